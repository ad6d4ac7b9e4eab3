//! The reference interpreter (filled in below).
