//! A fake health-data API (being written).
