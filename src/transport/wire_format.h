// machnet transport v1 wire header (carried as the UDP payload). Fixed 88
// bytes, all multi-byte fields big-endian. docs/PROTOCOL.md is the reference.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace machnet {
namespace transport {

constexpr uint16_t kWireMagic = 0x4d4e;  // "MN"
constexpr uint8_t kWireVersion = 1;
constexpr size_t kMaxSackBlocks = 4;

enum class SegType : uint8_t {
  kSyn = 1,
  kSynAck = 2,
  kData = 3,       // carries a message fragment; consumes one sequence number
  kAck = 4,        // pure acknowledgement / window update
  kFin = 5,        // end of our sending side; consumes one sequence number
  kRst = 6,        // abort
  kKeepalive = 7,  // probe (keepalive or zero-window); answered by an ACK
};
constexpr uint8_t kMaxSegType = 7;

// flags
constexpr uint8_t kFlagAck = 0x01;          // ack/rwnd/sack fields are valid
constexpr uint8_t kFlagTsEcho = 0x02;       // tsecr/ack_delay are valid
constexpr uint8_t kFlagAckNow = 0x04;       // receiver should not delay its ACK
constexpr uint8_t kFlagStream = 0x08;       // SYN/SYN-ACK: byte-stream mode
constexpr uint8_t kFlagPayloadCsum = 0x10;  // checksum covers the payload too
constexpr uint8_t kFlagRetransmit = 0x20;   // informational (tracing)
// Stream services (docs/PROTOCOL.md 2.1). SYN: a service SYN, sent to the
// peer's rendezvous port; the `ack` field carries the service port.
// SYN-ACK: the answer to one, sent from the accepting endpoint's own port.
// RST: "no such service" (a machnet host, but nothing listens there).
constexpr uint8_t kFlagService = 0x40;
// Path migration (docs/PROTOCOL.md, "Moving a flow to another process"): the
// sender's flow moved to another process and UDP port of the same host; set
// on every segment of the moved flow until the peer answers at the new port.
constexpr uint8_t kFlagMigrated = 0x80;
constexpr uint8_t kKnownFlags = 0xff;

struct SackBlock {
  uint32_t start = 0;  // first sequence number received
  uint32_t end = 0;    // one past the last
};

// On-the-wire layout; every field big-endian. Accessed only through
// encode_header/decode_header, never cast onto a buffer directly.
struct __attribute__((packed)) WireHeader {
  uint16_t magic;                     // 0  kWireMagic
  uint8_t version;                    // 2  kWireVersion
  uint8_t type;                       // 3  SegType
  uint8_t flags;                      // 4
  uint8_t sack_count;                 // 5  valid sack blocks (0..4)
  uint16_t payload_len;               // 6  bytes after the header
  uint32_t src_conn;                  // 8  sender's connection id
  uint32_t dst_conn;                  // 12 receiver's connection id (0 in a SYN)
  uint32_t seq;                       // 16 segment sequence number (one per DATA/FIN/SYN)
  uint32_t ack;                       // 20 cumulative: next sequence number expected
                                      //    (service SYN: the service port)
  uint32_t rwnd;                      // 24 receive window, bytes beyond `ack`
  uint32_t checksum;                  // 28 see compute_checksum
  uint32_t msg_id;                    // 32 DATA: message number; SYN: receive ring (segments)
  uint32_t msg_len;                   // 36 DATA: message length; SYN: max payload per segment
  uint32_t msg_offset;                // 40 DATA: offset of this fragment in the message
  uint32_t ack_delay;                 // 44 ns between receiving the echoed segment and this ACK
  uint32_t tsval;                     // 48 sender clock, low 32 bits of ns
  uint32_t tsecr;                     // 52 echoed tsval
  uint32_t sack[2 * kMaxSackBlocks];  // 56 start,end pairs
};
constexpr size_t kHeaderSize = 88;
static_assert(sizeof(WireHeader) == kHeaderSize, "wire header must be 88 bytes");

// Host-order view of a header.
struct Segment {
  SegType type = SegType::kAck;
  uint8_t flags = 0;
  uint8_t sack_count = 0;
  uint16_t payload_len = 0;
  uint32_t src_conn = 0;
  uint32_t dst_conn = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint32_t rwnd = 0;
  uint32_t msg_id = 0;
  uint32_t msg_len = 0;
  uint32_t msg_offset = 0;
  uint32_t ack_delay = 0;
  uint32_t tsval = 0;
  uint32_t tsecr = 0;
  SackBlock sack[kMaxSackBlocks];
  const uint8_t* payload = nullptr;  // set by decode_header, points into the datagram
};

enum class DecodeResult : uint8_t {
  kOk,
  kShort,
  kBadMagic,
  kBadVersion,
  kBadType,
  kBadLength,
  kBadChecksum,
  kBadSack,
};

// Writes the 88-byte header for `s` with its checksum (over the header, plus
// the payload when kFlagPayloadCsum is set in s.flags).
void encode_header(const Segment& s, const iovec* payload, size_t n_payload,
                   uint8_t out[kHeaderSize]);

// Validates and decodes; never reads past `len`.
DecodeResult decode_header(const uint8_t* data, size_t len, Segment* out);

// Raw CRC32C update (no pre/post inversion).
uint32_t crc32c(uint32_t crc, const uint8_t* p, size_t n);

// CRC32C over the header (checksum field as zero) and, if asked, the payload
// (any split into iovecs gives the same result).
uint32_t compute_checksum(const uint8_t* hdr, const iovec* payload, size_t n_payload,
                          bool include_payload);

}  // namespace transport
}  // namespace machnet
