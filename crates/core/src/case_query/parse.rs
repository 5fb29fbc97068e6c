//! The parser: tokens to a syntax tree, by recursive descent with its depth bounded.
//!
//! ```text
//! query     = or
//! or        = and { OR and }
//! and       = primary { [AND] primary }
//! primary   = "(" or ")" | condition
//! condition = field op value
//! ```

use jiff::civil::Date;

use crate::case::{parse_property_name, READ_ONLY_FIELDS, STANDARD_FIELDS};

use super::ast::{orderable, Condition, EqOp, Expr, GroupRef, Op, TextField, TimeField, Value};
use super::lex::{tokens, Tok, Token};
use super::{MAX_CONDITIONS, MAX_DEPTH, MAX_QUERY_CHARS};

/// Why a query could not be read, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at {position}: {message}")]
pub struct QueryError {
    /// 1-based position of the character where the problem is (one past the end when the
    /// text ended too early).
    pub position: usize,
    /// What was wrong or expected, without the position.
    pub message: String,
}

impl QueryError {
    pub(super) fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

pub(super) fn parse(text: &str) -> Result<Expr, QueryError> {
    if text.chars().nth(MAX_QUERY_CHARS).is_some() {
        return Err(QueryError::new(
            MAX_QUERY_CHARS + 1,
            format!(
                "a query may have at most {} characters",
                thousands(MAX_QUERY_CHARS)
            ),
        ));
    }
    let mut p = Parser {
        toks: tokens(text)?,
        at: 0,
        depth: 0,
        conditions: 0,
    };
    if p.peek() == &Tok::End {
        return Err(QueryError::new(
            p.pos(),
            "expected a condition such as district = Gulu",
        ));
    }
    let expr = p.or()?;
    match p.peek() {
        Tok::End => Ok(expr),
        Tok::Close => Err(QueryError::new(p.pos(), "')' has no '(' before it")),
        other => Err(QueryError::new(
            p.pos(),
            format!(
                "expected AND, OR, a condition or the end of the query, found {}",
                describe(other)
            ),
        )),
    }
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    depth: usize,
    conditions: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.at).map_or(&Tok::End, |t| &t.tok)
    }
    fn pos(&self) -> usize {
        match self.toks.get(self.at) {
            Some(t) => t.pos,
            None => self.toks.last().map_or(1, |t| t.pos),
        }
    }
    fn bump(&mut self) -> Token {
        let t = self.toks.get(self.at).cloned().unwrap_or(Token {
            tok: Tok::End,
            pos: self.pos(),
        });
        self.at += 1;
        t
    }
    fn keyword(&self) -> Option<&'static str> {
        match self.peek() {
            Tok::Word(w) => keyword(w),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.and()?];
        while self.keyword() == Some("OR") {
            self.bump();
            parts.push(self.and_after(Some("OR"))?);
        }
        Ok(group(parts, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        self.and_after(None)
    }

    fn and_after(&mut self, after: Option<&str>) -> Result<Expr, QueryError> {
        let mut parts = vec![self.primary(after)?];
        loop {
            match (self.peek(), self.keyword()) {
                (_, Some("AND")) => {
                    self.bump();
                    parts.push(self.primary(Some("AND"))?);
                }
                (_, Some(_)) => break,
                // Two conditions side by side: an implicit AND.
                (Tok::Word(_) | Tok::Open, None) => parts.push(self.primary(None)?),
                _ => break,
            }
        }
        Ok(group(parts, Expr::And))
    }

    fn primary(&mut self, after: Option<&str>) -> Result<Expr, QueryError> {
        let pos = self.pos();
        let wanted = match after {
            Some(k) => format!("expected a condition after '{k}'"),
            None => "expected a condition".to_string(),
        };
        match self.peek().clone() {
            Tok::Open => {
                if self.depth >= MAX_DEPTH {
                    return Err(QueryError::new(
                        pos,
                        format!("parentheses may be nested at most {MAX_DEPTH} deep"),
                    ));
                }
                self.bump();
                self.depth += 1;
                let inner = self.or()?;
                self.depth -= 1;
                match self.peek() {
                    Tok::Close => {
                        self.bump();
                        Ok(inner)
                    }
                    Tok::End => Err(QueryError::new(
                        self.pos(),
                        format!("expected ')' to close the '(' at {pos}"),
                    )),
                    other => Err(QueryError::new(
                        self.pos(),
                        format!(
                            "expected AND, OR, a condition or ')' to close the '(' at {pos}, found {}",
                            describe(other)
                        ),
                    )),
                }
            }
            Tok::Word(w) => match keyword(&w) {
                Some(k) => Err(QueryError::new(pos, format!("{wanted}, found '{k}'"))),
                None => self.condition().map(Expr::Cond),
            },
            Tok::End => Err(QueryError::new(pos, wanted)),
            other => Err(QueryError::new(
                pos,
                format!("{wanted}, found {}", describe(&other)),
            )),
        }
    }

    fn condition(&mut self) -> Result<Condition, QueryError> {
        let field = self.bump();
        let Tok::Word(name) = field.tok else {
            return Err(QueryError::new(field.pos, "expected a field name"));
        };
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(QueryError::new(
                field.pos,
                format!("a query may have at most {MAX_CONDITIONS} conditions"),
            ));
        }
        let kind = field_kind(&name, field.pos)?;
        let op_tok = self.bump();
        let Tok::Op(op) = op_tok.tok else {
            return Err(QueryError::new(
                op_tok.pos,
                format!("expected an operator (=, !=, >, >=, <, <=, ~) after '{name}'"),
            ));
        };
        let value_tok = self.bump();
        let (text, quoted) = match value_tok.tok {
            Tok::Word(w) if keyword(&w).is_some() => {
                return Err(QueryError::new(
                    value_tok.pos,
                    format!(
                        "expected a value after '{}' (for the word {w} itself, write \"{w}\")",
                        op.as_str()
                    ),
                ))
            }
            Tok::Word(w) => (w, false),
            Tok::Quoted(q) => (q, true),
            _ => {
                return Err(QueryError::new(
                    value_tok.pos,
                    format!("expected a value after '{}'", op.as_str()),
                ))
            }
        };
        typed(kind, (op, op_tok.pos), text, quoted, value_tok.pos)
    }
}

/// A word that is `AND` or `OR` in any case, in capitals.
fn keyword(word: &str) -> Option<&'static str> {
    if word.eq_ignore_ascii_case("and") {
        Some("AND")
    } else if word.eq_ignore_ascii_case("or") {
        Some("OR")
    } else {
        None
    }
}

fn group(mut parts: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if parts.len() == 1 {
        if let Some(only) = parts.pop() {
            return only;
        }
    }
    make(parts)
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Open => "'('".to_string(),
        Tok::Close => "')'".to_string(),
        Tok::Op(op) => format!("'{}'", op.as_str()),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(_) => "a quoted value".to_string(),
        Tok::End => "the end of the query".to_string(),
    }
}

/// What a field word names.
enum FieldKind {
    Text(TextField),
    Closed,
    Time(TimeField),
    Group,
}

fn field_kind(word: &str, pos: usize) -> Result<FieldKind, QueryError> {
    let builtin = match word.to_ascii_lowercase().as_str() {
        "case_id" => FieldKind::Text(TextField::CaseId),
        "name" => FieldKind::Text(TextField::Name),
        "external_id" => FieldKind::Text(TextField::ExternalId),
        "phone_number" => FieldKind::Text(TextField::PhoneNumber),
        "case_type" => FieldKind::Text(TextField::CaseType),
        "language_code" => FieldKind::Text(TextField::LanguageCode),
        "owner_id" => FieldKind::Text(TextField::OwnerId),
        "closed" => FieldKind::Closed,
        "created_at" => FieldKind::Time(TimeField::CreatedAt),
        "modified_at" => FieldKind::Time(TimeField::ModifiedAt),
        "group" => FieldKind::Group,
        "deleted" => {
            return Err(QueryError::new(
                pos,
                "'deleted' cannot be queried: queries only see cases that are not deleted",
            ))
        }
        _ => return property(word, pos),
    };
    Ok(builtin)
}

/// A property, written `NAME` or `properties.NAME`.
fn property(word: &str, pos: usize) -> Result<FieldKind, QueryError> {
    let name = match word.get(..11) {
        Some(prefix) if prefix.eq_ignore_ascii_case("properties.") => word.get(11..),
        _ => Some(word),
    }
    .unwrap_or(word);
    let lower = name.to_ascii_lowercase();
    let standard =
        STANDARD_FIELDS.contains(&lower.as_str()) || READ_ONLY_FIELDS.contains(&lower.as_str());
    if standard {
        let hint = if lower == "deleted" {
            "queries only see cases that are not deleted".to_string()
        } else {
            format!("write {lower}")
        };
        return Err(QueryError::new(
            pos,
            format!("'{name}' is a case field, not a property: {hint}"),
        ));
    }
    match parse_property_name(name) {
        Ok(_) => Ok(FieldKind::Text(TextField::Property(name.to_string()))),
        Err(_) => Err(QueryError::new(
            pos,
            format!(
                "'{word}' is not a field: a property name has 1 to 64 letters, digits, '_', '-' or '.'"
            ),
        )),
    }
}

/// Checks the value against what the field takes, and builds the condition.
fn typed(
    kind: FieldKind,
    (op, op_pos): (Op, usize),
    text: String,
    quoted: bool,
    pos: usize,
) -> Result<Condition, QueryError> {
    let err = |m: String| Err(QueryError::new(pos, m));
    let shown = if quoted {
        format!("\"{text}\"")
    } else {
        format!("'{text}'")
    };
    match kind {
        FieldKind::Text(field) => {
            let value = Value::new(text);
            if value.is_empty() && !matches!(op, Op::Eq | Op::Ne) {
                return err(format!(
                    "\"\" (no value) can only follow = or !=, not '{}'",
                    op.as_str()
                ));
            }
            if op.is_ordering() && !orderable(value.kind()) {
                return err(format!(
                    "'{}' needs a number or a date (YYYY-MM-DD), not {shown}",
                    op.as_str()
                ));
            }
            Ok(Condition::Text { field, op, value })
        }
        FieldKind::Closed => {
            let op = eq_op(op, "closed", op_pos)?;
            let value = if text.eq_ignore_ascii_case("true") {
                true
            } else if text.eq_ignore_ascii_case("false") {
                false
            } else {
                return err(format!("closed takes true or false, not {shown}"));
            };
            Ok(Condition::Closed { op, value })
        }
        FieldKind::Time(field) => {
            if op == Op::Contains {
                return Err(QueryError::new(
                    op_pos,
                    format!("{} takes =, !=, >, >=, < or <=, not '~'", field.name()),
                ));
            }
            match calendar_date(&text) {
                Some(date) => Ok(Condition::Time { field, op, date }),
                None => err(format!(
                    "{} takes a date (YYYY-MM-DD), not {shown}",
                    field.name()
                )),
            }
        }
        FieldKind::Group => {
            let op = eq_op(op, "group", op_pos)?;
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return err("group takes a group's id or name".to_string());
            }
            let group = if !quoted && trimmed.bytes().all(|b| b.is_ascii_digit()) {
                match trimmed.parse::<i64>() {
                    Ok(id) => GroupRef::Id(id),
                    Err(_) => return err(format!("{shown} is too large for a group id")),
                }
            } else {
                GroupRef::Name(trimmed.to_string())
            };
            Ok(Condition::Group { op, group })
        }
    }
}

fn eq_op(op: Op, field: &str, pos: usize) -> Result<EqOp, QueryError> {
    match op {
        Op::Eq => Ok(EqOp::Eq),
        Op::Ne => Ok(EqOp::Ne),
        other => Err(QueryError::new(
            pos,
            format!("{field} takes = or !=, not '{}'", other.as_str()),
        )),
    }
}

/// A `YYYY-MM-DD` text that is a day of the calendar.
fn calendar_date(text: &str) -> Option<Date> {
    if !super::compare::is_date(text) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<i16>().ok());
    Date::new(
        n(0..4)?,
        i8::try_from(n(5..7)?).ok()?,
        i8::try_from(n(8..10)?).ok()?,
    )
    .ok()
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
