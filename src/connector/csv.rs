//! The csv file connector (being written).
