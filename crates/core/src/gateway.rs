//! What gateways and storage share: delivery reports and inbound messages as read from a
//! gateway's callbacks, and each gateway kind's settings checked field by field ([`config`]).
//! Sending is the `casecast-gateways` crate's business; nothing here does I/O.

pub mod address;
pub mod config;

/// Where a message stands according to a delivery report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The operator's SMSC took it.
    Sent,
    /// The handset got it.
    Delivered,
    /// It will not arrive.
    Failed,
    /// The report says nothing final (buffered, queued).
    Pending,
}

/// A delivery report, read from a gateway's callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Our id (gateways given it in the callback URL) or the gateway's id.
    pub message: MessageRef,
    pub status: DeliveryStatus,
    /// The gateway's words, for the message log.
    pub detail: String,
}

/// How a report names its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageRef {
    Ours(i64),
    Gateway(String),
}

/// A message from a phone, read from a gateway's callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundSms {
    /// The sender, as the gateway wrote it (E.164 where it can be parsed).
    pub from: String,
    pub to: String,
    pub text: String,
    pub gateway_message_id: Option<String>,
}

/// Where the gateway's own words begin in a send error: a stored error reads
/// `category [detail: …]`. The category (`the gateway refused the message (HTTP 400)`) is
/// ours and everyone in the project may read it; the detail (the start of the gateway's
/// answer, a connection error) is for admins, as it may echo whatever answered at the
/// gateway's address.
pub const DETAIL_OPEN: &str = " [detail: ";

/// A send error's text: the category, then the detail (if any) in `[detail: …]`. The detail
/// loses its control characters and square brackets, so that it ends at the first `]`.
pub fn error_text(category: &str, detail: &str) -> String {
    let detail: String = detail
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            '[' => '(',
            ']' => ')',
            c => c,
        })
        .collect();
    if detail.is_empty() {
        category.to_string()
    } else {
        format!("{category}{DETAIL_OPEN}{detail}]")
    }
}

/// A stored error as non-admins see it: every `[detail: …]` left out.
pub fn error_without_detail(stored: &str) -> String {
    let mut out = String::with_capacity(stored.len());
    let mut rest = stored;
    while let Some(start) = rest.find(DETAIL_OPEN) {
        out.push_str(&rest[..start]);
        rest = match rest[start..].find(']') {
            Some(end) => &rest[start + end + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_of_an_error_is_kept_apart() {
        let e = error_text(
            "the gateway refused the message (HTTP 400)",
            "bad [request]\nsecret=1",
        );
        assert_eq!(
            e,
            "the gateway refused the message (HTTP 400) [detail: bad (request)secret=1]"
        );
        assert_eq!(
            error_without_detail(&e),
            "the gateway refused the message (HTTP 400)"
        );
        let stored = format!("gave up after 5 attempts: {e}; not handed to a gateway");
        assert_eq!(
            error_without_detail(&stored),
            "gave up after 5 attempts: the gateway refused the message (HTTP 400); not handed to a gateway"
        );
        assert_eq!(
            error_text("the gateway timed out", "  "),
            "the gateway timed out"
        );
        assert_eq!(
            error_without_detail("the number opted out"),
            "the number opted out"
        );
        assert_eq!(error_without_detail("cut [detail: no end"), "cut");
    }
}
