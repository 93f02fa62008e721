//! Local fakes of Exist and of the services `exist-agent` pulls from, each written from that
//! service's public documentation (shapes, parameters, paging, auth), never from the agent's own
//! code: a fake that shares the agent's rules would agree with the agent when both are wrong.
//!
//! - [`exist`]: Exist's API v2 and OAuth2, following Exist's documentation and its recorded
//!   replies, with Exist's own rules (not the agent's);
//! - [`health`]: a health-data API in the Human-API style (`updated_since`, `Link` paging);
//! - [`services`]: the APIs people pull their own data from (Oura, WakaTime, Toggl Track,
//!   Home Assistant, ActivityWatch, Withings), and what phones push (Health Auto Export).

pub mod exist;
pub mod health;
pub mod services;
