//! Splits a query's text into tokens, each with its 1-based character position.

use super::ast::{is_bare_char, Op};
use super::parse::QueryError;

/// A piece of a query.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Open,
    Close,
    Op(Op),
    /// A bare word, as written.
    Word(String),
    /// A quoted value, without its quotes and escapes.
    Quoted(String),
    End,
}

/// A token and where it starts (1-based, in characters).
#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// The tokens of `text`, ending with [`Tok::End`] at one past the last character.
pub(super) fn tokens(text: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        let next = chars.get(i + 1).copied();
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::Open, 1),
            ')' => (Tok::Close, 1),
            '=' => (Tok::Op(Op::Eq), 1),
            '~' => (Tok::Op(Op::Contains), 1),
            '!' if next == Some('=') => (Tok::Op(Op::Ne), 2),
            '!' => {
                return Err(QueryError::new(
                    pos,
                    "expected '=' after '!' (write != for \"is not\")",
                ))
            }
            '>' if next == Some('=') => (Tok::Op(Op::Ge), 2),
            '>' => (Tok::Op(Op::Gt), 1),
            '<' if next == Some('=') => (Tok::Op(Op::Le), 2),
            '<' => (Tok::Op(Op::Lt), 1),
            '"' => {
                let (text, len) = quoted(&chars[i..], pos)?;
                (Tok::Quoted(text), len)
            }
            _ => {
                let len = chars[i..].iter().take_while(|c| is_bare_char(**c)).count();
                (Tok::Word(chars[i..i + len].iter().collect()), len)
            }
        };
        out.push(Token { tok, pos });
        i += len;
    }
    out.push(Token {
        tok: Tok::End,
        pos: chars.len() + 1,
    });
    Ok(out)
}

/// Reads `"…"` from its opening quote: the text and how many characters it took.
fn quoted(chars: &[char], pos: usize) -> Result<(String, usize), QueryError> {
    let mut text = String::new();
    let mut i = 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(QueryError::new(
                    pos,
                    "a quoted value is not closed (no '\"' after it)",
                ))
            }
            Some('"') => return Ok((text, i + 1)),
            Some('\\') => match chars.get(i + 1) {
                Some(c @ ('"' | '\\')) => {
                    text.push(*c);
                    i += 2;
                }
                Some(other) => {
                    return Err(QueryError::new(
                        pos + i,
                        format!("'\\{other}' is not an escape: inside quotes write \\\" for a quote and \\\\ for a backslash"),
                    ))
                }
                None => {
                    return Err(QueryError::new(
                        pos,
                        "a quoted value is not closed (no '\"' after it)",
                    ))
                }
            },
            Some(c) => {
                text.push(*c);
                i += 1;
            }
        }
    }
}
