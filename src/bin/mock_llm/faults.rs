//! Faults a test can ask for, by trigger word or `x-mock-fault` header.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Overloaded,
    RateLimited,
    ServerError,
    BadRequest,
    /// Streams slowly (200 ms per delta) so a client can stop mid-way.
    Slow,
    /// Drops the connection before `message_stop`.
    Cut,
    /// Answers only after 30 s, so a client can hang up before any answer.
    Hang,
}

impl Fault {
    const ALL: [(&'static str, Fault); 7] = [
        ("mock:529", Fault::Overloaded),
        ("mock:429", Fault::RateLimited),
        ("mock:500", Fault::ServerError),
        ("mock:400", Fault::BadRequest),
        ("mock:slow", Fault::Slow),
        ("mock:cut", Fault::Cut),
        ("mock:hang", Fault::Hang),
    ];

    pub fn find(text: &str) -> Option<Fault> {
        Self::ALL
            .iter()
            .find(|(word, _)| text.contains(word))
            .map(|(_, fault)| *fault)
    }

    /// The error status and Anthropic error body for faults that fail at once.
    pub fn immediate_error(self) -> Option<(u16, &'static str, &'static str)> {
        match self {
            Fault::Overloaded => Some((529, "overloaded_error", "Overloaded")),
            Fault::RateLimited => Some((
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            )),
            Fault::ServerError => Some((500, "api_error", "Internal server error")),
            Fault::BadRequest => Some((
                400,
                "invalid_request_error",
                "messages: text content blocks must be non-empty",
            )),
            Fault::Slow | Fault::Cut | Fault::Hang => None,
        }
    }
}
