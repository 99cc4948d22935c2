use sea_orm::entity::prelude::*;

/// A CSV import of contacts: uploaded, then run with a column mapping.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "import_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    /// `UPLOADED`, `RUNNING`, `COMPLETED` or `FAILED`.
    pub status: String,
    pub file_name: String,
    pub file_size: i64,
    /// JSON array of the CSV's column names.
    #[sea_orm(column_type = "Text")]
    pub headers: String,
    /// JSON of the column mapping, once started.
    #[sea_orm(column_type = "Text", nullable)]
    pub mapping: Option<String>,
    pub total_rows: Option<i64>,
    pub processed_rows: i64,
    pub added: i64,
    pub updated: i64,
    pub failed: i64,
    pub warnings: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// Refreshed by the node running the job; a stale one lets another node take over.
    pub heartbeat_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
