//! A project's messaging settings as stored: the settings and their rules are the domain's
//! (`casecast_core::settings`, re-exported here); saving them is here.

pub use casecast_core::settings::*;

use crate::error::{StoreError, StoreResult};
use crate::Db;

impl From<SettingsFieldError> for StoreError {
    fn from(e: SettingsFieldError) -> Self {
        StoreError::Invalid(e.into())
    }
}

impl Db {
    /// Replaces a project's messaging settings after checking them.
    pub async fn set_messaging_settings(
        &self,
        project_id: i64,
        settings: &MessagingSettings,
    ) -> StoreResult<()> {
        settings.check()?;
        let json = serde_json::to_string(settings).expect("settings serialise");
        sqlx::query("UPDATE projects SET messaging_settings = $1 WHERE id = $2")
            .bind(json)
            .bind(project_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
