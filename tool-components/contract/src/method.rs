//! The HTTP methods a tool may use on the gateway (the WIT `gateway.method`),
//! one type for the host's capability table and the guests' requests.

/// HTTP method of a gateway request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// The upper-case name used in error texts (`GET /api/combos`) and `degraded[].source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Method;

    #[test]
    fn names_are_upper_case_http() {
        let all = [Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete];
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["GET", "POST", "PUT", "PATCH", "DELETE"]);
    }
}
