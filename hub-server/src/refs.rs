//! Branches and tags: created and deleted under the repo's write lock, for the API and the web
//! settings page alike.

use crate::app::AppState;
use crate::db::RepoRow;
use crate::error::{ApiError, ApiResult};
use crate::git;
use crate::repos::Author;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    fn word(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }
    fn full(self, name: &str) -> String {
        match self {
            RefKind::Branch => format!("refs/heads/{name}"),
            RefKind::Tag => format!("refs/tags/{name}"),
        }
    }
}

/// A branch or tag name git accepts, that is not itself a full ref.
pub fn validate_ref_name(kind: RefKind, name: &str) -> ApiResult<()> {
    if name.is_empty() || name.starts_with("refs/") || name.len() > 255 || !git2::Reference::is_valid_name(&kind.full(name)) {
        return Err(ApiError::bad_request(format!("invalid {} name {name:?}", kind.word())));
    }
    Ok(())
}

/// Creates a branch or tag at `from` (a revision). A tag with a message is annotated by `tagger`.
pub async fn create(
    state: &AppState,
    repo: &RepoRow,
    kind: RefKind,
    name: &str,
    from: &str,
    annotation: Option<(String, Author)>,
) -> ApiResult<()> {
    validate_ref_name(kind, name)?;
    let (name, from) = (name.to_string(), from.to_string());
    state
        .locked(
            &repo.id,
            state.with_git(&repo.id, move |g| {
                let commit = git::resolve_revision(g, &from).ok_or_else(|| ApiError::revision_not_found(&from))?;
                let exists = || {
                    let word = kind.word();
                    ApiError::conflict(format!("{}{} {name} already exists", word[..1].to_uppercase(), &word[1..]))
                };
                if g.find_reference(&kind.full(&name)).is_ok() {
                    return Err(exists());
                }
                let result = match (kind, annotation) {
                    (RefKind::Branch, _) => g.reference(&kind.full(&name), commit, false, "branch: created").map(|_| ()),
                    (RefKind::Tag, Some((message, tagger))) if !message.is_empty() => {
                        let target = g.find_object(commit, Some(git2::ObjectType::Commit))?;
                        g.tag(&name, &target, &tagger.signature()?, &message, false).map(|_| ())
                    }
                    (RefKind::Tag, _) => {
                        let target = g.find_object(commit, Some(git2::ObjectType::Commit))?;
                        g.tag_lightweight(&name, &target, false).map(|_| ())
                    }
                };
                match result {
                    Err(e) if e.code() == git2::ErrorCode::Exists => Err(exists()),
                    other => Ok(other?),
                }
            }),
        )
        .await?;
    crate::repos::record_head(state, &repo.id).await?;
    Ok(())
}

/// Deletes a branch (never the default one) or a tag.
pub async fn delete(state: &AppState, repo: &RepoRow, kind: RefKind, name: &str) -> ApiResult<()> {
    let name = name.to_string();
    state
        .locked(
            &repo.id,
            state.with_git(&repo.id, move |g| {
                let refname = kind.full(&name);
                if kind == RefKind::Branch && refname == git::default_branch(g) {
                    return Err(ApiError::forbidden(format!("cannot delete the default branch {name}")));
                }
                let mut r = g.find_reference(&refname).map_err(|_| ApiError::revision_not_found(&name))?;
                Ok(r.delete()?)
            }),
        )
        .await?;
    crate::repos::record_head(state, &repo.id).await?;
    Ok(())
}
