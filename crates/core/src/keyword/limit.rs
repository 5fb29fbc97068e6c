//! The per-number limit on keyword replies, so that two auto-responders answering each other
//! (or one sender repeating a keyword) stop getting answers.
//!
//! Every automatic reply to an inbound message counts (a keyword's reply actions, its
//! missing-field or invalid-field reply, an unknown sender's reply), whichever keyword sent it:
//! a number may get at most `replies` of them in any `window`. The default is
//! [`ReplyLimit::DEFAULT`], 5 per 10 minutes (CHT refuses more than 5 identical messages to one
//! recipient in 30 minutes; 10 minutes lets a person who made mistakes try again sooner). A
//! reply over the limit is not sent; the keyword's other actions still run.

use std::fmt;
use std::str::FromStr;

/// Most replies a limit may allow per window.
pub const MAX_REPLIES: u32 = 1000;
/// Longest window: a day, in seconds.
pub const MAX_WINDOW_SECONDS: u32 = 24 * 60 * 60;

/// At most `replies` keyword replies to one number in any window of `window_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimit {
    replies: u32,
    window_seconds: u32,
}

/// Why a reply limit was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the number of replies must be from 1 to {MAX_REPLIES}, not {0}")]
    Replies(u32),
    #[error("the window must be from 1 second to 24 hours")]
    Window,
    #[error(
        "'{0}' is not a reply limit: write replies/window, such as 5/10m (5 replies per 10 \
         minutes; the window in s, m or h)"
    )]
    Shape(String),
}

impl Default for ReplyLimit {
    fn default() -> Self {
        ReplyLimit::DEFAULT
    }
}

impl ReplyLimit {
    /// 5 replies per 10 minutes.
    pub const DEFAULT: ReplyLimit = ReplyLimit {
        replies: 5,
        window_seconds: 600,
    };

    /// A limit of `replies` (1 to [`MAX_REPLIES`]) per `window_seconds` (1 to a day).
    pub fn new(replies: u32, window_seconds: u32) -> Result<ReplyLimit, LimitError> {
        if !(1..=MAX_REPLIES).contains(&replies) {
            return Err(LimitError::Replies(replies));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&window_seconds) {
            return Err(LimitError::Window);
        }
        Ok(ReplyLimit {
            replies,
            window_seconds,
        })
    }

    /// Replies allowed per window.
    pub fn replies(&self) -> u32 {
        self.replies
    }

    /// The window's length in seconds.
    pub fn window_seconds(&self) -> u32 {
        self.window_seconds
    }

    /// The earliest time (ms since the epoch) a reply sent to the number still counts at
    /// `now_ms`, exclusive: the store counts replies sent after it.
    pub fn window_start(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(i64::from(self.window_seconds) * 1000)
    }

    /// Whether another reply may go to a number now, given the times (ms since the epoch) of
    /// the keyword replies it was already sent; times at or before [`Self::window_start`] no
    /// longer count, and times after `now_ms` (another process's clock) do.
    pub fn allows(&self, sent_ms: impl IntoIterator<Item = i64>, now_ms: i64) -> bool {
        let start = self.window_start(now_ms);
        let recent = sent_ms.into_iter().filter(|&t| t > start).count();
        recent < self.replies as usize
    }
}

impl fmt::Display for ReplyLimit {
    /// `5/10m`: the window in the largest whole unit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.window_seconds;
        if w.is_multiple_of(3600) {
            write!(f, "{}/{}h", self.replies, w / 3600)
        } else if w.is_multiple_of(60) {
            write!(f, "{}/{}m", self.replies, w / 60)
        } else {
            write!(f, "{}/{}s", self.replies, w)
        }
    }
}

impl FromStr for ReplyLimit {
    type Err = LimitError;

    /// `5/10m`, `3/600s`, `20/1h` (a bare window number is minutes).
    fn from_str(s: &str) -> Result<ReplyLimit, LimitError> {
        let shape = || LimitError::Shape(s.chars().take(40).collect());
        let (replies, window) = s.trim().split_once('/').ok_or_else(shape)?;
        let replies: u32 = replies.trim().parse().map_err(|_| shape())?;
        let window = window.trim();
        let (digits, unit) = match window.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => window.split_at(i),
            None => (window, "m"),
        };
        let amount: u32 = digits.parse().map_err(|_| shape())?;
        let seconds = match unit.trim() {
            "s" => Some(amount),
            "m" => amount.checked_mul(60),
            "h" => amount.checked_mul(3600),
            _ => return Err(shape()),
        }
        .ok_or(LimitError::Window)?;
        ReplyLimit::new(replies, seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn default_is_five_per_ten_minutes() {
        let l = ReplyLimit::default();
        assert_eq!((l.replies(), l.window_seconds()), (5, 600));
        assert_eq!(l.to_string(), "5/10m");
    }

    #[test]
    fn counts_only_replies_inside_the_window() {
        let l = ReplyLimit::DEFAULT;
        let now = 1_000 * MIN;
        assert!(l.allows([], now));
        let four: Vec<i64> = (1..=4).map(|i| now - i * MIN).collect();
        assert!(l.allows(four.clone(), now));
        let mut five = four.clone();
        five.push(now);
        assert!(!l.allows(five.clone(), now));
        // A reply exactly one window old no longer counts; one just inside does.
        let mut edge = four.clone();
        edge.push(now - 10 * MIN);
        assert!(l.allows(edge, now));
        let mut inside = four;
        inside.push(now - 10 * MIN + 1);
        assert!(!l.allows(inside, now));
        // Once the oldest (now - 4 min) ages out, one more may go.
        assert!(l.allows(five.clone(), now + 6 * MIN));
        assert!(!l.allows(five.clone(), now + 6 * MIN - 1));
        // Times from a clock ahead of ours count.
        assert!(!l.allows(vec![now + MIN; 5], now));
        assert_eq!(l.window_start(now), now - 10 * MIN);
        assert_eq!(l.window_start(i64::MIN + 5), i64::MIN);
    }

    #[test]
    fn twenty_in_a_minute_get_the_limit() {
        // One sender sends a keyword 20 times in a minute: replies go while the limit allows.
        let l = ReplyLimit::DEFAULT;
        let mut sent = Vec::new();
        for i in 0..20 {
            let now = i * 3_000;
            if l.allows(sent.iter().copied(), now) {
                sent.push(now);
            }
        }
        assert_eq!(sent.len(), 5);
    }

    #[test]
    fn parses_and_prints() {
        for (text, replies, seconds, back) in [
            ("5/10m", 5, 600, "5/10m"),
            (" 3 / 600s ", 3, 600, "3/10m"),
            ("20/1h", 20, 3600, "20/1h"),
            ("1/90s", 1, 90, "1/90s"),
            ("2/15", 2, 900, "2/15m"),
            ("1000/24h", 1000, 86_400, "1000/24h"),
        ] {
            let l: ReplyLimit = text.parse().unwrap();
            assert_eq!(
                (l.replies(), l.window_seconds()),
                (replies, seconds),
                "{text}"
            );
            assert_eq!(l.to_string(), back);
            assert_eq!(back.parse::<ReplyLimit>().unwrap(), l);
        }
        assert_eq!("0/10m".parse::<ReplyLimit>(), Err(LimitError::Replies(0)));
        assert_eq!(
            "1001/1m".parse::<ReplyLimit>(),
            Err(LimitError::Replies(1001))
        );
        assert_eq!("5/25h".parse::<ReplyLimit>(), Err(LimitError::Window));
        assert_eq!("5/0s".parse::<ReplyLimit>(), Err(LimitError::Window));
        assert_eq!(
            "5/4294967295h".parse::<ReplyLimit>(),
            Err(LimitError::Window)
        );
        for bad in [
            "",
            "5",
            "five/10m",
            "5/10d",
            "5/m",
            "5/-1m",
            "-1/10m",
            "5/10 minutes",
        ] {
            let e = bad.parse::<ReplyLimit>().unwrap_err();
            assert!(matches!(e, LimitError::Shape(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("such as 5/10m"), "{e}");
        }
    }
}
