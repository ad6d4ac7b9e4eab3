//! The ldif file connector (being written).
