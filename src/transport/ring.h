// Growable ring buffer (FIFO with random access). Capacity doubles up to a
// hard maximum and never shrinks, so steady state allocates nothing per
// packet and a flow's tracking memory is bounded by max_cap. Nothing is
// allocated before the first element: a half-open flow (possibly one of a
// SYN flood) costs no ring memory.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace machnet {
namespace transport {

template <class T>
class Ring {
 public:
  void reset(size_t initial_cap, size_t max_cap) {
    size_t cap = 1;
    while (cap < initial_cap) cap <<= 1;
    initial_cap_ = cap;
    max_cap_ = max_cap;
    buf_.clear();
    buf_.shrink_to_fit();
    head_ = 0;
    size_ = 0;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t max_size() const { return max_cap_; }
  size_t capacity() const { return buf_.size(); }
  T& operator[](size_t i) { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  const T& operator[](size_t i) const { return buf_[(head_ + i) & (buf_.size() - 1)]; }
  T& front() { return (*this)[0]; }

  // Grows the logical size to n with default elements; false past max_cap.
  bool extend_to(size_t n) {
    if (n <= size_) return true;
    if (n > max_cap_) return false;
    if (n > buf_.size()) grow(n);
    for (size_t i = size_; i < n; ++i) buf_[(head_ + i) & (buf_.size() - 1)] = T{};
    size_ = n;
    return true;
  }
  bool push_back(const T& v) {
    if (!extend_to(size_ + 1)) return false;
    (*this)[size_ - 1] = v;
    return true;
  }
  bool push_back(T&& v) {
    if (!extend_to(size_ + 1)) return false;
    (*this)[size_ - 1] = std::move(v);
    return true;
  }
  void pop_front() {
    buf_[head_] = T{};  // release resources held by T (e.g. vectors)
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
  }
  void clear() {
    while (size_ > 0) pop_front();
  }

 private:
  void grow(size_t need) {
    size_t cap = buf_.empty() ? initial_cap_ : buf_.size();
    while (cap < need) cap <<= 1;
    std::vector<T> nb(cap);
    for (size_t i = 0; i < size_; ++i) nb[i] = std::move((*this)[i]);
    buf_.swap(nb);
    head_ = 0;
  }

  std::vector<T> buf_;
  size_t initial_cap_ = 1;
  size_t head_ = 0;
  size_t size_ = 0;
  size_t max_cap_ = 0;
};

}  // namespace transport
}  // namespace machnet
