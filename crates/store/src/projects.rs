//! Projects (tenants): slug, name, time zone and default phone country.

use casecast_core::{CountryCode, ProjectSlug, TimeZoneName};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::{is_unique_violation, StoreError, StoreResult};
use crate::settings::{MessagingSettings, SettingsError};
use crate::Db;

/// A project as stored.
#[derive(Clone, Debug, Serialize)]
pub struct Project {
    #[serde(skip)]
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub time_zone: String,
    pub country: Option<String>,
    pub created_at: i64,
    /// Quiet hours, keywords, replies, validity; an error when the stored settings cannot be
    /// used (the dispatcher then sends none of the project's messages).
    #[serde(skip)]
    pub messaging: Result<MessagingSettings, SettingsError>,
}

impl Project {
    /// The default country for phone numbers written without a country code.
    pub fn country_code(&self) -> Option<CountryCode> {
        self.country
            .as_deref()
            .and_then(|c| CountryCode::parse(c).ok())
    }
    /// The project's time zone.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        TimeZoneName::parse(&self.time_zone)
            .map(|t| t.zone())
            .unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// Seconds a message queued now may wait before it expires. While the stored settings
    /// cannot be used, the default: nothing of the project is sent then anyway, and a message
    /// queued meanwhile keeps a day for an admin to mend them.
    pub fn validity_seconds(&self) -> i64 {
        match &self.messaging {
            Ok(m) => m.validity_seconds,
            Err(_) => crate::settings::DEFAULT_VALIDITY_SECONDS,
        }
    }

    /// How late a reminder occurrence may be sent (after an outage) before it is recorded as
    /// missed, unless its rule sets its own. While the stored settings cannot be used, the
    /// default (2 days): nothing of the project is sent then anyway.
    pub fn reminder_late_limit(&self) -> jiff::SignedDuration {
        match &self.messaging {
            Ok(m) => jiff::SignedDuration::from_hours(m.reminder_late_limit_hours),
            Err(_) => casecast_core::reminder::DEFAULT_LATE_LIMIT,
        }
    }

    /// The settings an inbound message is read with. While the stored ones cannot be used,
    /// the defaults, so that STOP still stops (logged as an error each time; the replies wait
    /// in the outbox like every other message of the project).
    pub fn inbound_settings(&self) -> std::borrow::Cow<'_, MessagingSettings> {
        match &self.messaging {
            Ok(m) => std::borrow::Cow::Borrowed(m),
            Err(e) => {
                tracing::error!(project.id = self.id, error = %e, "inbound message read with the default keywords: the project's messaging settings cannot be used");
                std::borrow::Cow::Owned(MessagingSettings::default())
            }
        }
    }
}

/// What is needed to create a project.
pub struct NewProject {
    pub slug: ProjectSlug,
    pub name: String,
    pub time_zone: TimeZoneName,
    pub country: Option<CountryCode>,
}

const COLUMNS: &str = "id, slug, name, time_zone, country, created_at, messaging_settings";

fn from_row(row: &AnyRow) -> Result<Project, sqlx::Error> {
    Ok(Project {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        time_zone: row.try_get("time_zone")?,
        country: row.try_get("country")?,
        created_at: row.try_get("created_at")?,
        messaging: MessagingSettings::from_stored(&row.try_get::<String, _>("messaging_settings")?),
    })
}

impl Db {
    /// Creates a project; `project_taken` when the slug exists.
    pub async fn create_project(&self, new: &NewProject) -> StoreResult<Project> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(casecast_core::case::FieldError::new(
                "name",
                "must be 1 to 255 characters",
            )
            .into());
        }
        let row = sqlx::query(&format!(
            "INSERT INTO projects (slug, name, time_zone, country, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(new.slug.as_str())
        .bind(name)
        .bind(new.time_zone.as_str())
        .bind(new.country.as_ref().map(|c| c.as_str().to_string()))
        .bind(casecast_core::time::now_ms())
        .fetch_one(self.pool())
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict {
                    code: "project_taken",
                    message: format!("a project with slug '{}' already exists", new.slug.as_str()),
                }
            } else {
                e.into()
            }
        })?;
        Ok(from_row(&row)?)
    }

    /// The project with this internal id.
    pub async fn project_by_id(&self, id: i64) -> StoreResult<Project> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM projects WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("project"))?;
        Ok(from_row(&row)?)
    }

    /// The project with this slug.
    pub async fn project_by_slug(&self, slug: &str) -> StoreResult<Project> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM projects WHERE slug = $1"))
            .bind(slug)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound("project"))?;
        Ok(from_row(&row)?)
    }

    /// The projects a user belongs to, with the user's role in each, by name.
    pub async fn projects_of_user(&self, user_id: i64) -> StoreResult<Vec<(Project, String)>> {
        let rows = sqlx::query(
            "SELECT p.id, p.slug, p.name, p.time_zone, p.country, p.created_at, p.messaging_settings, m.role
             FROM projects p JOIN memberships m ON m.project_id = p.id
             WHERE m.user_id = $1 ORDER BY p.name, p.slug",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((from_row(r)?, r.try_get::<String, _>("role")?)))
            .collect()
    }
}
