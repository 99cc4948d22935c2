use async_graphql::{
    Context, Enum, ID, InputObject, Object, Result, SimpleObject, Subscription, Upload,
    connection::Connection,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use parley_entity::{import_issue, import_job};

use super::mapping::{ColumnMapping, Field};
use crate::{
    auth::{RoleGuard, guard::OWNER_MANAGER},
    contacts::{
        graphql::{ContactFilterInput, to_filter},
        segments,
    },
    downloads::{self, Download},
    errors::AppError,
    graphql::{app_state, relay, scope},
    projects::graphql::parse_id,
};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ImportStatus {
    Uploaded,
    Running,
    Completed,
    Failed,
}

impl ImportStatus {
    fn parse(s: &str) -> Self {
        match s {
            super::RUNNING => Self::Running,
            super::COMPLETED => Self::Completed,
            super::FAILED => Self::Failed,
            _ => Self::Uploaded,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ImportField {
    Name,
    Phone,
    Tags,
    Source,
    FirstMessage,
    /// A custom attribute; name it in `attributeKey`.
    Attribute,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum IssueSeverity {
    /// The row was not imported.
    Error,
    /// The row was imported, something in it was left out.
    Warning,
}

#[derive(InputObject)]
pub struct ColumnMappingInput {
    /// The column's name in the file's header.
    pub column: String,
    pub field: ImportField,
    pub attribute_key: Option<String>,
}

#[derive(SimpleObject)]
pub struct DownloadLink {
    /// Relative to the API's address; works without headers until it expires.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl From<downloads::Link> for DownloadLink {
    fn from(l: downloads::Link) -> Self {
        Self {
            url: l.url,
            expires_at: l.expires_at,
        }
    }
}

pub struct ContactImport(pub import_job::Model);

#[Object]
impl ContactImport {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn status(&self) -> ImportStatus {
        ImportStatus::parse(&self.0.status)
    }
    async fn file_name(&self) -> &str {
        &self.0.file_name
    }
    async fn file_size(&self) -> i64 {
        self.0.file_size
    }
    /// The file's column names, to offer a mapping.
    async fn headers(&self) -> Vec<String> {
        serde_json::from_str(&self.0.headers).unwrap_or_default()
    }
    /// Data rows in the file.
    async fn total_rows(&self) -> Option<i64> {
        self.0.total_rows
    }
    async fn processed_rows(&self) -> i64 {
        self.0.processed_rows
    }
    async fn added(&self) -> i64 {
        self.0.added
    }
    async fn updated(&self) -> i64 {
        self.0.updated
    }
    async fn failed(&self) -> i64 {
        self.0.failed
    }
    async fn warnings(&self) -> i64 {
        self.0.warnings
    }
    /// Why the whole import failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// Rows that failed or were applied with something left out, in file order.
    async fn issues(
        &self,
        ctx: &Context<'_>,
        severity: Option<IssueSeverity>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ImportIssue>> {
        let page = relay::page_request(first, after, last, before)?;
        let severity = severity.map(|s| match s {
            IssueSeverity::Error => "ERROR",
            IssueSeverity::Warning => "WARNING",
        });
        let page = super::issues(app_state(ctx), scope(ctx)?, self.0.id, severity, page).await?;
        Ok(relay::connection(page, |i| i.id, ImportIssue))
    }
    /// The failed rows as CSV (the file's columns plus `error`).
    async fn failed_rows_download(&self, ctx: &Context<'_>) -> DownloadLink {
        downloads::link(
            app_state(ctx),
            &Download::ImportFailedRows {
                project_id: self.0.project_id,
                job_id: self.0.id,
            },
        )
        .into()
    }
}

pub struct ImportIssue(pub import_issue::Model);

#[Object]
impl ImportIssue {
    /// 1 is the first row after the header.
    async fn row_number(&self) -> i64 {
        self.0.row_number
    }
    async fn severity(&self) -> IssueSeverity {
        if self.0.severity == "ERROR" {
            IssueSeverity::Error
        } else {
            IssueSeverity::Warning
        }
    }
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    async fn cells(&self) -> Vec<String> {
        serde_json::from_str(&self.0.raw_row).unwrap_or_default()
    }
}

#[derive(SimpleObject)]
pub struct ContactImportUpload {
    pub import: ContactImport,
    /// The first rows, to help choose the mapping.
    pub preview: Vec<Vec<String>>,
}

/// Live progress of an import.
#[derive(SimpleObject)]
pub struct ContactImportProgress {
    pub import_id: ID,
    pub status: ImportStatus,
    pub processed_rows: i64,
    pub total_rows: Option<i64>,
    pub added: i64,
    pub updated: i64,
    pub failed: i64,
    pub warnings: i64,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct ImportQuery;

#[Object]
impl ImportQuery {
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn contact_imports(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ContactImport>> {
        let page = relay::page_request(first, after, last, before)?;
        let page = super::list(app_state(ctx), scope(ctx)?, page).await?;
        Ok(relay::connection(page, |j| j.id, ContactImport))
    }

    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn contact_import(&self, ctx: &Context<'_>, id: ID) -> Result<ContactImport> {
        let id = parse_id("id", &id)?;
        Ok(ContactImport(
            super::find(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }
}

#[derive(Default)]
pub struct ImportMutation;

#[Object]
impl ImportMutation {
    /// Uploads a CSV (GraphQL multipart request). A file that cannot be read gives a
    /// FAILED import with the reason.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn upload_contact_import(
        &self,
        ctx: &Context<'_>,
        file: Upload,
    ) -> Result<ContactImportUpload> {
        let value = file
            .value(ctx)
            .map_err(|e| AppError::bad_input("file", e.to_string()))?;
        let file_name = value.filename.clone();
        let size = value.size().map_err(AppError::internal)?;
        // The file (a temporary file) is read as a stream, never whole.
        let file = value.into_read();
        let upload = super::upload(app_state(ctx), scope(ctx)?, &file_name, file, size).await?;
        Ok(ContactImportUpload {
            import: ContactImport(upload.job),
            preview: upload.preview,
        })
    }

    /// Starts an uploaded import. Name and phone must be mapped; a wrong mapping is
    /// refused and the import can be started again with a corrected one.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn start_contact_import(
        &self,
        ctx: &Context<'_>,
        id: ID,
        mapping: Vec<ColumnMappingInput>,
    ) -> Result<ContactImport> {
        let id = parse_id("id", &id)?;
        let columns = mapping
            .into_iter()
            .map(|m| {
                let field = match (m.field, m.attribute_key) {
                    (ImportField::Attribute, Some(key)) => Field::Attribute(key),
                    (ImportField::Attribute, None) => {
                        return Err(AppError::bad_input(
                            "mapping",
                            "an ATTRIBUTE column needs attributeKey",
                        ));
                    }
                    (_, Some(_)) => {
                        return Err(AppError::bad_input(
                            "mapping",
                            "attributeKey goes with ATTRIBUTE only",
                        ));
                    }
                    (ImportField::Name, None) => Field::Name,
                    (ImportField::Phone, None) => Field::Phone,
                    (ImportField::Tags, None) => Field::Tags,
                    (ImportField::Source, None) => Field::Source,
                    (ImportField::FirstMessage, None) => Field::FirstMessage,
                };
                Ok(ColumnMapping {
                    column: m.column,
                    field,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ContactImport(
            super::start(app_state(ctx), scope(ctx)?, id, columns).await?,
        ))
    }

    /// A link to the contacts matching `filter` as CSV, streamed.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn export_contacts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContactFilterInput>,
    ) -> Result<DownloadLink> {
        let scope = scope(ctx)?;
        let filter = segments::expand(app_state(ctx), scope, to_filter(filter)?).await?;
        // Checked now, so that a bad filter fails here rather than in the download.
        filter.condition(Utc::now())?;
        Ok(downloads::link(
            app_state(ctx),
            &Download::ContactsExport {
                project_id: scope.project_id,
                filter: Box::new(filter),
            },
        )
        .into())
    }
}

#[derive(Default)]
pub struct ImportSubscription;

#[Subscription]
impl ImportSubscription {
    /// Progress of the project's imports (or of one), after every batch.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn contact_import_progress(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> Result<impl Stream<Item = ContactImportProgress>> {
        let only = id.map(|id| parse_id("id", &id)).transpose()?;
        let scope = scope(ctx)?;
        let stream = app_state(ctx)
            .bus
            .subscribe(scope.project_id)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(stream.filter_map(move |event| async move {
            if event.topic != "import.progress" {
                return None;
            }
            let p = &event.payload;
            let job_id: uuid::Uuid = p["jobId"].as_str()?.parse().ok()?;
            if only.is_some_and(|id| id != job_id) {
                return None;
            }
            Some(ContactImportProgress {
                import_id: ID(job_id.to_string()),
                status: ImportStatus::parse(p["status"].as_str().unwrap_or_default()),
                processed_rows: p["processedRows"].as_i64().unwrap_or_default(),
                total_rows: p["totalRows"].as_i64(),
                added: p["added"].as_i64().unwrap_or_default(),
                updated: p["updated"].as_i64().unwrap_or_default(),
                failed: p["failed"].as_i64().unwrap_or_default(),
                warnings: p["warnings"].as_i64().unwrap_or_default(),
                error: p["error"].as_str().map(str::to_owned),
            })
        }))
    }
}
