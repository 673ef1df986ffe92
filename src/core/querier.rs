//! Per-interface IGMP querier state (RFC 3376 section 6.6 and 8).
