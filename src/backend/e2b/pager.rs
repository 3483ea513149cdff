//! [`Paginator`]: the pages of a control-plane listing, fetched one at a time as they are
//! needed, as an [`Iterator`] over the items (E2B's `SandboxPaginator` and
//! `SnapshotPaginator`).

use std::collections::HashSet;
use std::fmt;

use crate::error::Error;

/// One page as the API answered it: the items and the token of the next page.
pub(crate) type Page<T> = (Vec<T>, Option<String>);

type Fetch<T> = Box<dyn FnMut(Option<&str>) -> Result<Page<T>, Error> + Send>;

/// The items of a listing, page after page. Iterating yields every item of every page,
/// fetching the next page when the current one is used up; [`Paginator::next_page`] takes a
/// whole page instead. After an error the iterator ends (the error is its last item); a
/// server that hands out a paging token twice is a [`Error::Protocol`] (the listing would
/// never end).
pub struct Paginator<T> {
    fetch: Fetch<T>,
    next_token: Option<String>,
    started: bool,
    done: bool,
    seen: HashSet<String>,
    buffered: std::vec::IntoIter<T>,
}

impl<T> fmt::Debug for Paginator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Paginator")
            .field("has_next", &self.has_next())
            .field("next_token", &self.next_token)
            .finish_non_exhaustive()
    }
}

impl<T> Paginator<T> {
    /// Pages from `first_token` on (the first page when `None`), each fetched with `fetch`.
    pub(crate) fn new(
        first_token: Option<String>,
        fetch: impl FnMut(Option<&str>) -> Result<Page<T>, Error> + Send + 'static,
    ) -> Paginator<T> {
        Paginator {
            fetch: Box::new(fetch),
            next_token: first_token,
            started: false,
            done: false,
            seen: HashSet::new(),
            buffered: Vec::new().into_iter(),
        }
    }

    /// Whether another page may be fetched: before the first page, and while the last page
    /// named a next one.
    pub fn has_next(&self) -> bool {
        !self.done && (!self.started || self.next_token.is_some())
    }

    /// The token of the next page, to continue the listing later (in a new query).
    pub fn next_token(&self) -> Option<&str> {
        self.next_token.as_deref()
    }

    /// Fetches the next whole page; `None` when there is none. Items of a page partly
    /// iterated are not repeated.
    pub fn next_page(&mut self) -> Option<Result<Vec<T>, Error>> {
        if !self.has_next() {
            return None;
        }
        self.started = true;
        match (self.fetch)(self.next_token.as_deref()) {
            Ok((items, next)) => {
                match next.filter(|t| !t.is_empty()) {
                    Some(token) if !self.seen.insert(token.clone()) => {
                        self.done = true;
                        return Some(Err(Error::protocol(
                            "the E2B API repeated a paging token: the listing would never end",
                        )));
                    }
                    next => self.next_token = next,
                }
                Some(Ok(items))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<T> Iterator for Paginator<T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Result<T, Error>> {
        loop {
            if let Some(item) = self.buffered.next() {
                return Some(Ok(item));
            }
            match self.next_page()? {
                Ok(items) => self.buffered = items.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(answers: Vec<Result<Page<u32>, Error>>) -> Paginator<u32> {
        let mut answers = answers.into_iter();
        Paginator::new(None, move |_| {
            answers.next().expect("asked for one page too many")
        })
    }

    #[test]
    fn items_come_page_after_page_and_errors_end_the_listing() {
        let p = pages(vec![
            Ok((vec![1, 2], Some("a".into()))),
            Ok((vec![], Some("b".into()))),
            Ok((vec![3], None)),
        ]);
        assert_eq!(p.map(Result::unwrap).collect::<Vec<_>>(), [1, 2, 3]);

        let mut p = pages(vec![
            Ok((vec![1], Some("a".into()))),
            Err(Error::protocol("boom")),
        ]);
        assert!(matches!(p.next(), Some(Ok(1))));
        assert!(matches!(p.next(), Some(Err(Error::Protocol { .. }))));
        assert!(p.next().is_none() && !p.has_next());
    }

    #[test]
    fn a_repeated_token_is_a_protocol_error() {
        let mut p = pages(vec![
            Ok((vec![1], Some("a".into()))),
            Ok((vec![2], Some("a".into()))),
        ]);
        assert!(matches!(p.next_page(), Some(Ok(v)) if v == [1]));
        assert_eq!(p.next_token(), Some("a"));
        assert!(matches!(p.next_page(), Some(Err(Error::Protocol { .. }))));
        assert!(p.next_page().is_none());
    }
}
