//! Signed notifications.
