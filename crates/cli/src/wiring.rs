//! Building connections from settings: the source reader and the SCIM client.

use crate::config::ConnectionSettings;
use scimsync_core::ports::{Classify, Disposition};

/// One step of `scimsync check`.
#[derive(Debug, Clone)]
pub struct CheckStep {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Adapters not yet wired.
#[derive(Debug, thiserror::Error)]
#[error("the {0} adapter is not available in this build")]
pub struct Unwired(&'static str);

impl Classify for Unwired {
    fn disposition(&self) -> Disposition {
        Disposition::Fatal
    }
}

pub struct NoSource;
pub struct NoTarget;

pub fn connection(
    _c: &ConnectionSettings,
) -> anyhow::Result<scimsync_engine::Connection<NoSource, NoTarget>> {
    anyhow::bail!("the source and target adapters are not wired yet")
}

pub async fn check(_c: &ConnectionSettings) -> Vec<CheckStep> {
    vec![CheckStep {
        name: "adapters".into(),
        ok: false,
        detail: "not wired yet".into(),
    }]
}

impl scimsync_core::ports::Source for NoSource {
    type Error = Unwired;
    async fn read(&self) -> Result<scimsync_core::source::SourceSnapshot, Unwired> {
        Err(Unwired("source"))
    }
}

impl scimsync_core::ports::Target for NoTarget {
    type Error = Unwired;
    async fn read(&self, _: bool) -> Result<scimsync_core::target::TargetSnapshot, Unwired> {
        Err(Unwired("target"))
    }
    async fn find_user(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<scimsync_core::target::TargetUser>, Unwired> {
        Err(Unwired("target"))
    }
    async fn create_user(
        &self,
        _: &scimsync_core::plan::UserAttributes,
    ) -> Result<scimsync_core::target::TargetUser, Unwired> {
        Err(Unwired("target"))
    }
    async fn update_user(
        &self,
        _: &scimsync_core::TargetUserId,
        _: &scimsync_core::plan::UserChanges,
    ) -> Result<(), Unwired> {
        Err(Unwired("target"))
    }
    async fn create_group(&self, _: &str) -> Result<scimsync_core::target::TargetGroup, Unwired> {
        Err(Unwired("target"))
    }
    async fn rename_group(&self, _: &scimsync_core::TargetGroupId, _: &str) -> Result<(), Unwired> {
        Err(Unwired("target"))
    }
    async fn add_members(
        &self,
        _: &scimsync_core::TargetGroupId,
        _: &[scimsync_core::TargetUserId],
    ) -> Result<(), Unwired> {
        Err(Unwired("target"))
    }
    async fn remove_members(
        &self,
        _: &scimsync_core::TargetGroupId,
        _: &[scimsync_core::TargetUserId],
    ) -> Result<(), Unwired> {
        Err(Unwired("target"))
    }
}
