"""The machnetd ABI (src/ipc/control_protocol.h, src/ipc/shm.h) for Python
tests, exactly as the C compiler lays it out: tests/ipc/ipc_abi prints every
constant and every structure's fields and offsets as JSON, and this module
packs and unpacks structures from that. No layout is written down here.

    abi = mnd_abi.load()              # runs $MACHNET_IPC_ABI, or
                                      # $MACHNET_BUILDDIR/tests/ipc/ipc_abi
    abi.const("MN_CTL_ATTACH")
    hdr = abi.struct("mn_ctl_header")
    raw = hdr.pack(magic=..., version=1, type=2, seq=1)   # missing fields are 0
    fields = abi.struct("mn_ctl_attach_reply").unpack(raw) # a dict by field name
"""
import json
import os
import struct
import subprocess

_SCALAR = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i32": "i", "ptr": "Q"}


class Struct:
    def __init__(self, abi, name):
        d = abi.structs[name]
        self.abi = abi
        self.name = name
        self.size = d["size"]
        self.fields = d["fields"]

    def _nested(self, f):
        t = f["type"]
        return self.abi.struct(t[len("struct "):]) if t.startswith("struct ") else None

    def pack(self, **values):
        unknown = set(values) - {f["name"] for f in self.fields}
        if unknown:
            raise KeyError(f"{self.name} has no field {sorted(unknown)}")
        buf = bytearray(self.size)
        for f in self.fields:
            if f["name"] not in values:
                continue
            v, off, n = values[f["name"]], f["offset"], f["count"]
            inner = self._nested(f)
            if inner is not None:
                items = v if n > 1 else [v]
                for i, item in enumerate(items):
                    raw = item if isinstance(item, (bytes, bytearray)) else inner.pack(**item)
                    buf[off + i * inner.size: off + (i + 1) * inner.size] = raw
            elif f["type"] == "char" or (f["type"] == "u8" and n > 1):
                raw = v.encode() if isinstance(v, str) else bytes(v)
                if len(raw) > f["size"]:
                    raise ValueError(f"{self.name}.{f['name']}: {len(raw)} bytes > {f['size']}")
                buf[off: off + len(raw)] = raw
            else:
                fmt = "<" + _SCALAR[f["type"]] * n
                struct.pack_into(fmt, buf, off, *(v if n > 1 else [v]))
        return bytes(buf)

    def unpack(self, data):
        if len(data) < self.size:
            raise ValueError(f"{self.name}: {len(data)} bytes, the structure has {self.size}")
        out = {}
        for f in self.fields:
            off, n = f["offset"], f["count"]
            inner = self._nested(f)
            if inner is not None:
                items = [inner.unpack(data[off + i * inner.size:]) for i in range(n)]
                out[f["name"]] = items if n > 1 else items[0]
            elif f["type"] == "char":
                out[f["name"]] = bytes(data[off: off + f["size"]]).split(b"\0", 1)[0].decode()
            elif f["type"] == "u8" and n > 1:
                out[f["name"]] = bytes(data[off: off + f["size"]])
            else:
                v = struct.unpack_from("<" + _SCALAR[f["type"]] * n, data, off)
                out[f["name"]] = list(v) if n > 1 else v[0]
        return out


class Abi:
    def __init__(self, doc):
        self.constants = doc["constants"]
        self.strings = doc["strings"]
        self.structs = doc["structs"]

    def const(self, name):
        return self.constants[name]

    def struct(self, name):
        return Struct(self, name)


def program():
    p = os.environ.get("MACHNET_IPC_ABI")
    if p:
        return p
    return os.path.join(os.environ.get("MACHNET_BUILDDIR", "."), "tests", "ipc", "ipc_abi")


def load(path=None):
    """The ABI from the ipc_abi program (path, $MACHNET_IPC_ABI or the build dir's)."""
    out = subprocess.run([path or program()], check=True, capture_output=True, text=True,
                         timeout=10).stdout
    return Abi(json.loads(out))
