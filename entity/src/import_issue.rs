use sea_orm::entity::prelude::*;

/// A row of an import that failed (`ERROR`) or was applied with something left out
/// (`WARNING`, e.g. an unknown tag).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "import_issues")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub job_id: Uuid,
    pub project_id: Uuid,
    /// 1 is the first row after the header.
    pub row_number: i64,
    pub severity: String,
    #[sea_orm(column_type = "Text")]
    pub reason: String,
    /// The row's cells as a JSON array, to rebuild the failed-rows CSV.
    #[sea_orm(column_type = "Text")]
    pub raw_row: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
