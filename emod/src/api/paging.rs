//! Page bounds and the page envelope shared by every listing endpoint.

use emo_api_types::Page;

use crate::error::{AppError, AppResult};

pub fn page_bounds(limit: Option<u64>, offset: Option<u64>) -> AppResult<(u64, u64)> {
    page_bounds_max(limit, offset, 1000)
}

pub fn page_bounds_max(limit: Option<u64>, offset: Option<u64>, max: u64) -> AppResult<(u64, u64)> {
    let limit = limit.unwrap_or(50.min(max));
    if limit == 0 || limit > max {
        return Err(AppError::query(format!(
            "limit must be between 1 and {max}"
        )));
    }
    let offset = offset.unwrap_or(0);
    // Databases take a signed 64-bit OFFSET; anything near that is no real page anyway.
    if offset > MAX_OFFSET {
        return Err(AppError::query(format!(
            "offset must be between 0 and {MAX_OFFSET}"
        )));
    }
    Ok((limit, offset))
}

/// The largest accepted `offset` (far beyond any real table, far below `i64::MAX`).
const MAX_OFFSET: u64 = 1 << 40;

pub fn page<T>(items: Vec<T>, total: i64, limit: u64, offset: u64) -> Page<T> {
    let total = total.max(0) as u64;
    let next = offset.saturating_add(items.len() as u64);
    Page {
        next_offset: (next < total && !items.is_empty()).then_some(next),
        items,
        total,
        offset,
        limit,
        next_after: None,
        total_capped: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let p = page(vec![1, 2], 5, 2, 0);
        assert_eq!(p.next_offset, Some(2));
        let p = page(vec![5], 5, 2, 4);
        assert_eq!(p.next_offset, None);
        assert!(page_bounds(Some(0), None).is_err());
        assert!(page_bounds(Some(1001), None).is_err());
        assert_eq!(page_bounds(None, Some(3)).unwrap(), (50, 3));
        // An offset that would turn negative as a database integer is a 400, not a 500/panic.
        assert!(page_bounds(None, Some(u64::MAX)).is_err());
        assert!(page_bounds(None, Some(i64::MAX as u64)).is_err());
        assert_eq!(
            page_bounds(None, Some(MAX_OFFSET)).unwrap(),
            (50, MAX_OFFSET)
        );
        assert_eq!(page(vec![1], 10, 1, u64::MAX).next_offset, None);
    }
}
