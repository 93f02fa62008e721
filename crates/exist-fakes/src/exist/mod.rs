//! A fake of Exist (being written).
