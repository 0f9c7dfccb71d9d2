//! HTTP/1.1: request parsing, responses, CORS.

pub mod request;
pub mod response;
