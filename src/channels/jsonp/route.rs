//! A route's JSONP settings, compiled: the channel owns them, so that the phases here need
//! nothing from `rules` (which holds them on each route).

use super::CallbackPattern;

/// JSONP settings of a route (its origin rules are the route's CORS policy).
#[derive(Debug, Clone)]
pub struct JsonpRoute {
    pub param: String,
    pub envelope: bool,
    pub allow_without_referer: bool,
    pub callback_pattern: CallbackPattern,
}
