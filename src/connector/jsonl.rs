//! The jsonl file connector (being written).
