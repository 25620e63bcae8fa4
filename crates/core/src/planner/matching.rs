//! Matching source users to target accounts: the link, externalId, then userName case-
//! insensitively; conflicts are rejected.

use super::*;

impl<'a> Planner<'a> {
    /// Users whose userName is held by another source user's account: created after the
    /// updates when that account is renamed away in this plan, else rejected as a conflict.
    pub(super) fn settle_blocked(&mut self, accounts: &Accounts<'a>) {
        let blocked: Vec<usize> = (0..self.users.len())
            .filter(|&i| {
                matches!(self.users[i].account, Account::Blocked(..))
                    || matches!(self.users[i].rename, Rename::Blocked(_))
            })
            .collect();
        if blocked.is_empty() {
            return;
        }
        let index: IdMap<&str, usize> = self
            .users
            .iter()
            .enumerate()
            .map(|(i, s)| (s.user.id.as_str(), i))
            .collect();
        let renamed_away = |users: &[UserState<'a>], owner: &str, t: &TargetUser| {
            index.get(owner).is_some_and(|&o| {
                let o = &users[o];
                o.wanted
                    && !o.rejected
                    && matches!(o.account, Account::Linked(ot, _) if ot.id == t.id)
                    && o.user_name.is_some_and(|n| !same_ci(n, &t.user_name))
            })
        };
        for &i in &blocked {
            let Rename::Blocked(holder) = self.users[i].rename else {
                continue;
            };
            let owner = accounts.link(holder).map(|l| l.source_id.as_str());
            self.users[i].rename = if owner.is_some_and(|o| renamed_away(&self.users, o, holder)) {
                Rename::Late
            } else {
                Rename::Conflict(format!(
                    "userName {:?} is held by target account {}{}; the userName is not changed",
                    holder.user_name,
                    holder.id,
                    owner
                        .map(|o| format!(" of source user {o}"))
                        .unwrap_or_default()
                ))
            };
        }
        for i in blocked {
            let Account::Blocked(t, owner) = self.users[i].account else {
                continue;
            };
            if renamed_away(&self.users, owner.source_id.as_str(), t) {
                self.users[i].account = Account::CreateAfterRename;
                continue;
            }
            let state = &self.users[i];
            let sid = state.user.id.as_str();
            let name = state.user_name.unwrap_or(&state.user.username);
            let reason = format!(
                "userName {name:?} is taken by target account {} which belongs to source user {}; a userName is unique on the target",
                t.id, owner.source_id
            );
            self.out.note(
                NoteKind::Conflict,
                ObjectKind::User,
                sid,
                name,
                reason.clone(),
            );
            self.out
                .reject(ObjectKind::User, sid, name, "userName", reason);
            self.users[i].account = Account::Nothing;
            self.users[i].rejected = true;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn match_account(
        &mut self,
        user: &'a DirectoryUser,
        name: &str,
        key: &str,
        by_external_id: &IdMap<&'a str, &'a TargetUser>,
        by_user_name: &IdMap<Cow<'a, str>, &'a TargetUser>,
        accounts: &Accounts<'a>,
        claimed: &mut IdSet<&'a str>,
    ) -> Account<'a> {
        if let Some(t) = by_external_id.get(user.id.as_str())
            && claimed.insert(t.id.as_str())
        {
            return Account::Adopt(t, MatchedBy::ExternalId);
        }
        let Some(t) = by_user_name.get(key) else {
            return Account::Create;
        };
        let sid = user.id.as_str();
        if let Some(owner) = accounts.link(t) {
            return Account::Blocked(t, owner);
        }
        if let Some(ext) = t.external_id.as_deref().filter(|e| *e != sid) {
            let reason = format!(
                "target account {} has userName {name:?} but externalId {ext:?}, not this user's id; it is not adopted. \
                 Clear or correct its externalId on the target to let scimsync manage it",
                t.id
            );
            self.out.note(
                NoteKind::Conflict,
                ObjectKind::User,
                sid,
                name,
                reason.clone(),
            );
            self.out
                .reject(ObjectKind::User, sid, name, "userName", reason);
            return Account::Nothing;
        }
        if !claimed.insert(t.id.as_str()) {
            let reason = format!(
                "target account {} with userName {name:?} is already matched to another source user",
                t.id
            );
            self.out
                .reject(ObjectKind::User, sid, name, "userName", reason);
            return Account::Nothing;
        }
        Account::Adopt(t, MatchedBy::UserName)
    }
}
