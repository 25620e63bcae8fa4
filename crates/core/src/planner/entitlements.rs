//! Entitlements: the rule's one profile, its permission sets (removing only the engine's own unless
//! authoritative), licence changes refused in the plan.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn is_profile(&self, e: &crate::target::Entitlement) -> bool {
        crate::target::is_profile(
            e,
            self.profiles.contains_key(e.value.as_str()),
            self.permission_sets.contains(e.value.as_str()),
        )
    }

    pub(super) fn profile_label(&self, id: &str) -> String {
        match self.profiles.get(id) {
            Some(p) => format!("{:?} ({id})", p.name),
            None => id.to_owned(),
        }
    }

    pub(super) fn entitlements(
        &self,
        user: &DirectoryUser,
        m: &MappedUser<'_>,
        t: &'a TargetUser,
        link: Option<&UserLink>,
        rule: &'a ResolvedRule,
        out: &mut Out,
    ) -> (Option<EntitlementChange>, Option<&'a str>) {
        let wanted = rule.profile.as_str();
        if self.entitlements_in_step(t, link, rule) {
            return (None, Some(wanted));
        }
        let mut current_profiles: Vec<&'a str> = Vec::new();
        let mut current_sets: BTreeSet<&'a str> = BTreeSet::new();
        for e in &t.entitlements {
            if self.is_profile(e) {
                current_profiles.push(e.value.as_str());
            } else {
                current_sets.insert(e.value.as_str());
            }
        }
        let sid = user.id.as_str();
        let name = m.user_name.unwrap_or(&user.username);
        let mut keep: Option<&'a str> = None;
        if let [current] = current_profiles[..]
            && current != wanted
        {
            let refused = self
                .held(
                    ObjectKind::User,
                    sid,
                    "profile",
                    &profile_fingerprint(wanted, current, &self.catalogue_fp),
                )
                .is_some();
            let licences = (
                self.profiles
                    .get(current)
                    .and_then(|p| p.licence.as_deref()),
                self.profiles.get(wanted).and_then(|p| p.licence.as_deref()),
            );
            if refused {
                let message = format!(
                    "the target refused the profile change from {} to {} before; not tried again until the rule or the account's profile changes",
                    self.profile_label(current),
                    self.profile_label(wanted)
                );
                out.note(
                    NoteKind::RefusedEarlier,
                    ObjectKind::User,
                    sid,
                    name,
                    message,
                );
                out.summary.held += 1;
                keep = Some(current);
            } else if let (Some(have), Some(want)) = licences
                && have != want
            {
                let reason = format!(
                    "the rule assigns profile {} (licence {want:?}) but the account has {} (licence {have:?}); \
                     a profile cannot change licence, so the profile is left as it is. Change the rule or the user's licence on the target",
                    self.profile_label(wanted),
                    self.profile_label(current)
                );
                out.reject(ObjectKind::User, sid, name, "profile", reason);
                keep = Some(current);
            }
        }
        let end_profile: &'a str = keep.unwrap_or(wanted);
        let profile_changed = keep.is_none() && current_profiles[..] != [wanted];
        let wanted_sets: BTreeSet<&str> = rule.permission_sets.iter().map(|p| p.as_str()).collect();
        let added: Vec<CompactString> = wanted_sets
            .iter()
            .filter(|p| !current_sets.contains(*p))
            .map(|p| CompactString::from(*p))
            .collect();
        let assigned = link.map(|l| &l.assigned_permission_sets);
        let removed: Vec<&str> = current_sets
            .iter()
            .copied()
            .filter(|p| !wanted_sets.contains(p))
            .filter(|p| {
                self.gov.authoritative_permission_sets || assigned.is_some_and(|a| a.contains(*p))
            })
            .collect();
        if !profile_changed && added.is_empty() && removed.is_empty() {
            return (None, Some(end_profile));
        }
        let mut permission_sets: Vec<CompactString> = current_sets
            .iter()
            .filter(|p| !removed.contains(p))
            .map(|p| CompactString::from(*p))
            .chain(added.iter().cloned())
            .collect();
        permission_sets.sort();
        permission_sets.dedup();
        let change = EntitlementChange {
            profile: end_profile.into(),
            profile_changed,
            permission_sets,
            added,
            removed: removed.into_iter().map(CompactString::from).collect(),
        };
        (Some(change), Some(end_profile))
    }

    /// Whether the account already holds exactly the rule's profile, all its permission sets
    /// and nothing the engine would remove: the common case, checked without allocating.
    pub(super) fn entitlements_in_step(
        &self,
        t: &TargetUser,
        link: Option<&UserLink>,
        rule: &ResolvedRule,
    ) -> bool {
        let mut wanted_profile = 0;
        for e in &t.entitlements {
            if self.is_profile(e) {
                if e.value != rule.profile {
                    return false;
                }
                wanted_profile += 1;
            } else if rule.permission_sets.binary_search(&e.value).is_err()
                && (self.gov.authoritative_permission_sets
                    || link.is_some_and(|l| l.assigned_permission_sets.contains(e.value.as_str())))
            {
                return false;
            }
        }
        wanted_profile == 1
            && rule
                .permission_sets
                .iter()
                .all(|p| t.entitlements.iter().any(|e| e.value == *p))
    }
}
