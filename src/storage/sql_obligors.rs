//! The obligor search both backends run, written once (see `sql_store.rs` for why a macro).

/// `text` for a LIKE pattern's start: its own `%`, `_` and `\` match only themselves.
pub(super) fn like_prefix(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 1);
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Expands the [`ObligorStore`](super::obligors::ObligorStore) implementation for one backend.
macro_rules! impl_sql_obligors {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::obligors::ObligorStore for $store {
            async fn find_obligors(
                &self,
                filter: &$crate::storage::obligors::ObligorFilter,
                after: Option<&$crate::domain::ObligorId>,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::obligors::ObligorSummary>> {
                use $crate::storage::sql_store::{self as sql, ORDER_COLUMNS};
                // A clerk's search: a scan of the obligors at worst (a few hundred thousand
                // rows), paged by obligor id.
                let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                    "SELECT o.obligor_id, o.last_name, o.first_name, o.ssn_last4 FROM obligors o \
                     WHERE ($1 IS NULL OR o.obligor_id IN (SELECT c.obligor_id FROM cases c WHERE c.case_number = $1)) \
                     AND ($2 IS NULL OR lower(o.last_name) LIKE $2 ESCAPE '\\') \
                     AND ($3 IS NULL OR o.ssn_last4 = $3) \
                     AND ($4 IS NULL OR o.obligor_id > $4) \
                     ORDER BY o.obligor_id LIMIT $5",
                )
                .bind(filter.case_number.as_ref().map(|c| c.as_str().to_owned()))
                .bind(filter.last_name_prefix.as_deref().map($crate::storage::sql_obligors::like_prefix))
                .bind(filter.ssn_last4.clone())
                .bind(after.map(|a| a.as_str().to_owned()))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                // Their orders in one statement (a page is at most 1,000 obligors).
                let ids: Vec<&str> = rows.iter().map(|row| row.0.as_str()).collect();
                let mut orders: Vec<sql::OrderRow> = Vec::new();
                for chunk in ids.chunks($crate::storage::sql_store::LOOKUP_CHUNK) {
                    let statement = format!(
                        "SELECT {ORDER_COLUMNS} FROM orders WHERE obligor_id IN ({}) ORDER BY order_id",
                        $crate::storage::sql_store::placeholders(chunk.len())
                    );
                    let mut query = sqlx::query_as(&statement);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    orders.extend(query.fetch_all(self.reader()).await?);
                }
                let mut found = Vec::with_capacity(rows.len());
                for (obligor_id, last_name, first_name, ssn_last4) in rows {
                    let own = orders
                        .iter()
                        .filter(|row| row.6 == obligor_id)
                        .map(|(id, case, monthly, start, arrears, end, _)| sql::order_from_columns(id, case, *monthly, start, *arrears, end.clone()))
                        .collect::<Result<Vec<_>, _>>()?;
                    found.push($crate::storage::obligors::ObligorSummary {
                        obligor_id: sql::obligor_id(&obligor_id)?,
                        last_name,
                        first_name,
                        ssn_last4,
                        orders: own,
                    });
                }
                Ok(found)
            }
        }
    };
}

pub(super) use impl_sql_obligors;

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_is_matched_as_typed_and_by_its_start() {
        assert_eq!(super::like_prefix("O'Br"), "o'br%");
        assert_eq!(super::like_prefix("50%_x\\"), "50\\%\\_x\\\\%");
    }
}
