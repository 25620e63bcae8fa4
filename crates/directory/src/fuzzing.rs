//! The parsers of what Duo answers, one function each, for the fuzz harness
//! (`cargo bench -p scimsync-tests --bench fuzz`): the code a read runs on the bytes received
//! (the envelope, `next_offset`, the rows), without the network.

use crate::duo::{
    DuoGroupRow, DuoIntegration, DuoUserRow, Metadata, decode, next_offset, sso_access,
    take_groups, take_users,
};
use crate::error::DirectoryError;
use scimsync_core::source::SourceSnapshot;

/// A users page answered with `status`, taken as a read takes it. Returns the users read.
pub fn users_page(status: u16, body: &[u8]) -> Result<usize, DirectoryError> {
    let (rows, meta): (Vec<DuoUserRow>, Metadata) = decode(status, body, "fuzz")?;
    let mut snapshot = SourceSnapshot::default();
    take_users(rows, &mut snapshot);
    next_offset(&meta, 0, "fuzz")?;
    Ok(snapshot.users.len())
}

/// A groups page answered with `status`. Returns the groups read.
pub fn groups_page(status: u16, body: &[u8]) -> Result<usize, DirectoryError> {
    let (rows, meta): (Vec<DuoGroupRow>, Metadata) = decode(status, body, "fuzz")?;
    let mut snapshot = SourceSnapshot::default();
    take_groups(rows, &mut snapshot);
    next_offset(&meta, 0, "fuzz")?;
    Ok(snapshot.groups.len())
}

/// The application's user access (`/admin/v1/integrations/{ikey}`).
pub fn integration(status: u16, body: &[u8]) -> Result<(), DirectoryError> {
    let (integration, _): (DuoIntegration, Metadata) = decode(status, body, "fuzz")?;
    sso_access(&integration);
    Ok(())
}
