//! Writes a [`Config`] as an idflow bundle.
