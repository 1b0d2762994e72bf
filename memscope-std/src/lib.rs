//! memscope-std (being written).
