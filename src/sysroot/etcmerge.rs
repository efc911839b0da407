//! The `/etc` merge (being written).
