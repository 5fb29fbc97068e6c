//! Gateways of a project: their kind and settings (credentials sealed with the server key), the
//! webhook secret, the rate limit, routing by number prefix and the default flag.

use casecast_core::case::FieldError;
use casecast_core::gateway::config::{Callbacks, ConfigError, GatewayConfig, GatewayKind};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::dialect;
use crate::error::{is_unique_violation, SetupError, StoreError, StoreResult};
use crate::secrets::{constant_time_eq, random_hex, token_digest};
use crate::Db;

/// Most characters in a gateway's name.
pub const MAX_NAME_CHARS: usize = 100;
/// Most number prefixes a gateway may route.
pub const MAX_PREFIXES: usize = 50;
/// Highest rate limit accepted, in segments per second.
pub const MAX_RATE: f64 = 100_000.0;
/// Lowest rate limit accepted: one segment every 100 s.
pub const MIN_RATE: f64 = 0.01;
/// Most attempts a gateway may make per message.
pub const MAX_ATTEMPTS_LIMIT: i64 = 20;
/// Attempts per message unless the gateway says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 5;

/// A gateway as stored, credentials opened. `Debug` hides the webhook secret (the settings
/// hide their own credentials).
#[derive(Clone)]
pub struct Gateway {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub kind: GatewayKind,
    pub config: GatewayConfig,
    /// The secret in this gateway's webhook URLs.
    pub webhook_secret: String,
    /// Where the gateway reaches Casecast, e.g. `http://casecast.example:8080`.
    pub callback_base_url: String,
    /// `None`: no limit.
    pub max_segments_per_second: Option<f64>,
    pub max_attempts: i64,
    /// Numbers starting with one of these (`+256`) go through this gateway.
    pub prefixes: Vec<String>,
    pub is_default: bool,
    pub created_at: i64,
    pub modified_at: i64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &self.config)
            .field("webhook_secret", &"***")
            .field("callback_base_url", &self.callback_base_url)
            .field("max_segments_per_second", &self.max_segments_per_second)
            .field("max_attempts", &self.max_attempts)
            .field("prefixes", &self.prefixes)
            .field("is_default", &self.is_default)
            .finish()
    }
}

impl Gateway {
    /// Callback URLs of this gateway.
    pub fn callbacks(&self) -> Callbacks {
        Callbacks {
            base: self.callback_base_url.clone(),
            gateway_id: self.id,
            secret: self.webhook_secret.clone(),
        }
    }
}

/// A new gateway. `Debug` leaves out the settings (they hold credentials).
#[derive(Clone)]
pub struct NewGateway {
    pub name: String,
    pub kind: GatewayKind,
    pub config: Value,
    pub callback_base_url: String,
    pub max_segments_per_second: Option<f64>,
    pub max_attempts: Option<i64>,
    pub prefixes: Vec<String>,
    pub is_default: bool,
}

/// Changes to a gateway; `None` leaves a field as it is. `Debug` leaves out the settings.
#[derive(Clone, Default)]
pub struct GatewayPatch {
    pub name: Option<String>,
    /// Secret fields showing the mask (or left out) keep their stored values.
    pub config: Option<Value>,
    pub callback_base_url: Option<String>,
    /// `Some(None)` removes the limit.
    pub max_segments_per_second: Option<Option<f64>>,
    pub max_attempts: Option<i64>,
    pub prefixes: Option<Vec<String>>,
    pub is_default: Option<bool>,
}

impl std::fmt::Debug for NewGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewGateway")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &"***")
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GatewayPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayPatch")
            .field("name", &self.name)
            .field("config", &self.config.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, project_id, name, kind, config_sealed, webhook_secret_sealed, \
    callback_base_url, max_segments_per_second, max_attempts, prefixes, is_default, created_at, modified_at";

fn check_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, without control characters"),
        ));
    }
    Ok(name.to_string())
}

fn check_rate(rate: Option<f64>) -> Result<Option<f64>, FieldError> {
    match rate {
        Some(r) if !(r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) => Err(FieldError::new(
            "max_segments_per_second",
            format!("must be from {MIN_RATE} to {MAX_RATE}, or null for no limit"),
        )),
        other => Ok(other),
    }
}

fn check_attempts(n: i64) -> Result<i64, FieldError> {
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&n) {
        return Err(FieldError::new(
            "max_attempts",
            format!("must be from 1 to {MAX_ATTEMPTS_LIMIT}"),
        ));
    }
    Ok(n)
}

fn check_base_url(url: &str) -> Result<String, FieldError> {
    let url = url.trim().trim_end_matches('/');
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 500
        && !url.contains('?')
        && !url.contains('#')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(FieldError::new(
            "callback_base_url",
            "must be the http:// or https:// address at which the gateway reaches Casecast, e.g. http://casecast.example:8080",
        ));
    }
    Ok(url.to_string())
}

/// Checks and normalises number prefixes: `+` and 1 to 15 digits each, none twice.
pub fn check_prefixes(prefixes: &[String]) -> Result<Vec<String>, FieldError> {
    if prefixes.len() > MAX_PREFIXES {
        return Err(FieldError::new(
            "prefixes",
            format!("at most {MAX_PREFIXES} prefixes"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for p in prefixes {
        let p = p.trim().replace([' ', '-'], "");
        let digits = p.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(
                "prefixes",
                format!("{p:?} is not a number prefix: write + and the country code, e.g. +256 or +25677"),
            ));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// A settings error as the field at fault (`config.sendsms_url`) and what is wrong with it.
fn config_field_error(e: ConfigError) -> FieldError {
    FieldError::new(e.path(), e.problem.to_string())
}

fn check_config(kind: GatewayKind, config: &Value) -> Result<GatewayConfig, FieldError> {
    GatewayConfig::parse(kind, config).map_err(config_field_error)
}

fn name_taken(name: &str) -> StoreError {
    StoreError::Conflict {
        code: "name_taken",
        message: format!("a gateway named '{name}' already exists in this project"),
    }
}

impl Db {
    fn gateway_from_row(&self, row: &AnyRow) -> StoreResult<Gateway> {
        let key = self.secret_key()?;
        let kind: String = row.try_get("kind")?;
        let kind = GatewayKind::parse(&kind).map_err(|e| StoreError::corrupt("gateway kind", e))?;
        let open = |column: &str| -> StoreResult<String> {
            let sealed: String = row.try_get(column)?;
            Ok(key.open(&sealed).map_err(SetupError::from)?)
        };
        let config: Value = serde_json::from_str(&open("config_sealed")?)
            .map_err(|e| StoreError::corrupt("gateway settings", e))?;
        let config = GatewayConfig::parse(kind, &config)
            .map_err(|e| StoreError::corrupt("gateway settings", e))?;
        let prefixes: String = row.try_get("prefixes")?;
        Ok(Gateway {
            id: row.try_get("id")?,
            project_id: row.try_get("project_id")?,
            name: row.try_get("name")?,
            kind,
            config,
            webhook_secret: open("webhook_secret_sealed")?,
            callback_base_url: row.try_get("callback_base_url")?,
            max_segments_per_second: row.try_get("max_segments_per_second")?,
            max_attempts: row.try_get("max_attempts")?,
            prefixes: prefixes
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            is_default: row.try_get::<i64, _>("is_default")? != 0,
            created_at: row.try_get("created_at")?,
            modified_at: row.try_get("modified_at")?,
        })
    }

    /// Adds a gateway. The first gateway of a project becomes its default.
    pub async fn create_gateway(&self, project_id: i64, new: &NewGateway) -> StoreResult<Gateway> {
        let name = check_name(&new.name)?;
        let config = check_config(new.kind, &new.config)?;
        let base = check_base_url(&new.callback_base_url)?;
        let rate = check_rate(new.max_segments_per_second)?;
        let attempts = check_attempts(new.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS))?;
        let prefixes = check_prefixes(&new.prefixes)?;
        let key = self.secret_key()?;
        let secret = random_hex(24);
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        self.lock_project_gateways(&mut tx, project_id).await?;
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM gateways WHERE project_id = $1 AND deleted_at IS NULL AND is_default = 1",
        )
        .bind(project_id)
        .fetch_one(&mut *tx)
        .await?;
        let is_default = new.is_default || others == 0;
        if is_default {
            sqlx::query("UPDATE gateways SET is_default = 0, modified_at = $2 WHERE project_id = $1 AND is_default = 1")
                .bind(project_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO gateways (project_id, name, name_key, kind, config_sealed, webhook_secret_sealed,
                webhook_digest, callback_base_url, max_segments_per_second, max_attempts, prefixes,
                is_default, created_at, modified_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
        )
        .bind(project_id)
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(new.kind.as_str())
        .bind(key.seal(&config.to_json().to_string()))
        .bind(key.seal(&secret))
        .bind(token_digest(&secret))
        .bind(&base)
        .bind(rate)
        .bind(attempts)
        .bind(prefixes.join(","))
        .bind(i64::from(is_default))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                name_taken(&name)
            } else {
                e.into()
            }
        })?;
        sqlx::query("INSERT INTO gateway_rates (gateway_id, next_free_us) VALUES ($1, 0)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.gateway(project_id, id).await
    }

    /// The project's live gateways, by name.
    pub async fn list_gateways(&self, project_id: i64) -> StoreResult<Vec<Gateway>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateways WHERE project_id = $1 AND deleted_at IS NULL ORDER BY name_key, id"
        ))
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| self.gateway_from_row(r)).collect()
    }

    /// Every live gateway of every project (for the dispatcher). A gateway whose settings
    /// cannot be read is left out and logged, so that it does not stop the others.
    pub async fn all_live_gateways(&self) -> StoreResult<Vec<Gateway>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateways WHERE deleted_at IS NULL ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            match self.gateway_from_row(row) {
                Ok(g) => out.push(g),
                Err(e) => {
                    let id: i64 = row.try_get("id").unwrap_or_default();
                    tracing::error!(gateway.id = id, error = %e, "a gateway's settings cannot be read; it sends nothing");
                }
            }
        }
        Ok(out)
    }

    /// Checks that this process seals with the same key as the others sharing the database
    /// (the first process to start leaves a sealed value to compare with).
    pub async fn check_secret_key(&self) -> StoreResult<()> {
        let key = self.secret_key()?;
        sqlx::query(
            "INSERT INTO server_key_check (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.seal("casecast key check"))
        .execute(self.pool())
        .await?;
        let sealed: String = sqlx::query_scalar("SELECT sealed FROM server_key_check WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        match key.open(&sealed) {
            Ok(text) if text == "casecast key check" => Ok(()),
            _ => Err(StoreError::Conflict {
                code: "wrong_secret_key",
                message:
                    "this database's gateway credentials were sealed with another secret key: \
                          give this process the same key as the others (CASECAST_SECRET_KEY, or \
                          CASECAST_KEY_FILE pointing at the same key file)"
                        .into(),
            }),
        }
    }

    /// Serialises gateway changes of one project (PostgreSQL; SQLite's write transaction
    /// already does), so that two changes of the default cannot both win.
    async fn lock_project_gateways(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        project_id: i64,
    ) -> StoreResult<()> {
        sqlx::query(&format!(
            "SELECT id FROM projects WHERE id = $1{}",
            dialect::for_update(self.dialect())
        ))
        .bind(project_id)
        .fetch_optional(&mut **tx)
        .await?;
        Ok(())
    }

    /// A live gateway of the project.
    pub async fn gateway(&self, project_id: i64, id: i64) -> StoreResult<Gateway> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateways WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("gateway"))?;
        self.gateway_from_row(&row)
    }

    /// The live gateway a webhook names, if its secret is right; `NotFound` otherwise (a
    /// wrong secret and an unknown gateway look the same from outside).
    pub async fn gateway_for_webhook(&self, id: i64, secret: &str) -> StoreResult<Gateway> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, webhook_digest FROM gateways WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound("gateway"))?;
        let digest: String = row.try_get("webhook_digest")?;
        if !constant_time_eq(&digest, &token_digest(secret)) {
            return Err(StoreError::NotFound("gateway"));
        }
        self.gateway_from_row(&row)
    }

    /// Changes a gateway.
    pub async fn update_gateway(
        &self,
        project_id: i64,
        id: i64,
        patch: &GatewayPatch,
    ) -> StoreResult<Gateway> {
        let old = self.gateway(project_id, id).await?;
        let name = match &patch.name {
            Some(n) => check_name(n)?,
            None => old.name.clone(),
        };
        let config = match &patch.config {
            Some(edit) => {
                if !edit.is_object() {
                    return Err(FieldError::new("config", "must be an object").into());
                }
                let merged =
                    GatewayConfig::merge_edit(&old.config, edit).map_err(config_field_error)?;
                check_config(old.kind, &merged)?
            }
            None => old.config.clone(),
        };
        let base = match &patch.callback_base_url {
            Some(b) => check_base_url(b)?,
            None => old.callback_base_url.clone(),
        };
        let rate = match patch.max_segments_per_second {
            Some(r) => check_rate(r)?,
            None => old.max_segments_per_second,
        };
        let attempts = check_attempts(patch.max_attempts.unwrap_or(old.max_attempts))?;
        let prefixes = match &patch.prefixes {
            Some(p) => check_prefixes(p)?,
            None => old.prefixes.clone(),
        };
        let key = self.secret_key()?;
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        self.lock_project_gateways(&mut tx, project_id).await?;
        let mut is_default = old.is_default;
        if patch.is_default == Some(true) && !old.is_default {
            sqlx::query("UPDATE gateways SET is_default = 0, modified_at = $2 WHERE project_id = $1 AND is_default = 1")
                .bind(project_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            is_default = true;
        } else if patch.is_default == Some(false) && old.is_default {
            return Err(FieldError::new(
                "is_default",
                "a project always has a default gateway: make another gateway the default instead",
            )
            .into());
        }
        let done = sqlx::query(
            "UPDATE gateways SET name = $1, name_key = $2, config_sealed = $3, callback_base_url = $4,
                max_segments_per_second = $5, max_attempts = $6, prefixes = $7, is_default = $8, modified_at = $9
             WHERE id = $10 AND project_id = $11 AND deleted_at IS NULL",
        )
        .bind(&name)
        .bind(name.to_lowercase())
        .bind(key.seal(&config.to_json().to_string()))
        .bind(&base)
        .bind(rate)
        .bind(attempts)
        .bind(prefixes.join(","))
        .bind(i64::from(is_default))
        .bind(now)
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                name_taken(&name)
            } else {
                e.into()
            }
        })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("gateway"));
        }
        if rate != old.max_segments_per_second {
            // Slots reserved at the old rate do not hold back the new one.
            sqlx::query("UPDATE gateway_rates SET next_free_us = 0 WHERE gateway_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.gateway(project_id, id).await
    }

    /// Deletes a gateway: its queued messages are cancelled (nothing more goes through it) and,
    /// if it was the default, the oldest remaining gateway becomes the default.
    pub async fn delete_gateway(&self, project_id: i64, id: i64) -> StoreResult<u64> {
        let now = casecast_core::time::now_ms();
        let mut tx = self.begin_write().await?;
        self.lock_project_gateways(&mut tx, project_id).await?;
        let row = sqlx::query(&format!(
            "SELECT is_default FROM gateways WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL{}",
            dialect::for_update(self.dialect())
        ))
        .bind(id)
        .bind(project_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("gateway"))?;
        let was_default = row.try_get::<i64, _>("is_default")? != 0;
        sqlx::query(
            "UPDATE gateways SET deleted_at = $1, is_default = 0, modified_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let cancelled = sqlx::query(
            "UPDATE messages SET status = 'cancelled', error = 'its gateway was deleted before it was sent',
                updated_at = $1 WHERE gateway_id = $2 AND status = 'queued'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if was_default {
            sqlx::query(
                "UPDATE gateways SET is_default = 1, modified_at = $1 WHERE id = (SELECT MIN(id) FROM gateways
                 WHERE project_id = $2 AND deleted_at IS NULL)",
            )
            .bind(now)
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(cancelled)
    }

    /// The gateway a message to `phone` goes through: the one whose longest prefix matches,
    /// else the default. `None` when the project has no gateway.
    pub async fn route(&self, project_id: i64, phone: &str) -> StoreResult<Option<i64>> {
        Ok(self.router(project_id).await?.route(phone))
    }

    /// The router for messages that name a gateway (that one only, while it is live in the
    /// project) or none (the project's routes). `None` when the named gateway is not there.
    pub async fn router_for(
        &self,
        project_id: i64,
        gateway_id: Option<i64>,
    ) -> StoreResult<Option<Router>> {
        let Some(id) = gateway_id else {
            return Ok(Some(self.router(project_id).await?));
        };
        let live: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM gateways WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(live.map(Router::only))
    }

    /// The project's live gateways as a [`Router`], for routing many numbers at once.
    pub async fn router(&self, project_id: i64) -> StoreResult<Router> {
        let rows = sqlx::query(
            "SELECT id, prefixes, is_default FROM gateways WHERE project_id = $1 AND deleted_at IS NULL",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        let mut router = Router::default();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let prefixes: String = r.try_get("prefixes")?;
            if r.try_get::<i64, _>("is_default")? != 0 {
                router.default = Some(id);
            }
            for p in prefixes.split(',').filter(|p| !p.is_empty()) {
                router.prefixes.push((p.to_string(), id));
            }
        }
        Ok(router)
    }
}

/// Which gateway each number goes through: the longest matching prefix, else the default.
#[derive(Clone, Debug, Default)]
pub struct Router {
    prefixes: Vec<(String, i64)>,
    default: Option<i64>,
}

impl Router {
    /// Every number through one gateway (a broadcast that names its gateway).
    pub fn only(gateway_id: i64) -> Router {
        Router {
            prefixes: Vec::new(),
            default: Some(gateway_id),
        }
    }

    /// Whether no number can be routed (the project has no gateway).
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty() && self.default.is_none()
    }

    /// The gateway for `phone`, or `None` when the project has no gateway.
    pub fn route(&self, phone: &str) -> Option<i64> {
        let mut best: Option<(usize, i64)> = None;
        for (p, id) in &self.prefixes {
            if phone.starts_with(p.as_str()) && best.is_none_or(|(len, _)| p.len() > len) {
                best = Some((p.len(), *id));
            }
        }
        best.map(|(_, id)| id).or(self.default)
    }
}
