//! Attributes: what a new account is created with, and exactly what an existing one changes (names
//! set, never cleared; email held until verified).

use super::*;

impl<'a> Planner<'a> {
    /// The manager's target id: `Ok(Some)` resolved, `Ok(None)` clear, `Err(())` leave alone
    /// (the manager's account is created in this plan; the next run sets it).
    pub(super) fn manager_of(
        &self,
        mapped: &MappedUser<'_>,
        manager_ids: &IdMap<&str, Option<&'a str>>,
    ) -> Result<Option<&'a str>, ()> {
        if self.policy.mapping.manager.is_none() {
            return Err(());
        }
        match mapped.manager_source_id {
            None => Ok(None),
            Some(sid) => match manager_ids.get(sid) {
                Some(Some(t)) => Ok(Some(*t)),
                Some(None) => Err(()),
                None => Ok(None),
            },
        }
    }

    pub(super) fn attributes(
        &self,
        user: &DirectoryUser,
        m: &MappedUser<'_>,
        rule: Option<&ResolvedRule>,
        manager: Result<Option<&str>, ()>,
    ) -> UserAttributes {
        let s = |v: Option<&str>| v.map(CompactString::from);
        UserAttributes {
            user_name: m.user_name.unwrap_or_default().into(),
            external_id: user.id.as_str().into(),
            given_name: s(m.given_name),
            family_name: s(m.family_name),
            display_name: s(m.display_name),
            nick_name: s(m.nick_name),
            title: s(m.title),
            email: m.email.unwrap_or_default().into(),
            work_phone: s(m.work_phone),
            federation_id: s(m.federation_id),
            enterprise: EnterpriseFields {
                employee_number: s(m.employee_number),
                department: s(m.department),
                division: s(m.division),
                organization: s(m.organization),
                cost_center: s(m.cost_center),
                manager: manager.ok().flatten().map(CompactString::from),
            },
            profile: rule.map(|r| r.profile.clone()),
            permission_sets: rule.map(|r| r.permission_sets.clone()).unwrap_or_default(),
            role: rule.and_then(|r| r.role.clone()),
        }
    }

    /// The changes an existing account needs, and the profile it ends with.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn changes(
        &self,
        user: &DirectoryUser,
        m: &MappedUser<'_>,
        t: &'a TargetUser,
        link: Option<&UserLink>,
        rule: Option<&'a ResolvedRule>,
        manager: Result<Option<&str>, ()>,
        out: &mut Out,
    ) -> (UserChanges, Option<&'a str>) {
        let mapping = &self.policy.mapping;
        let mut c = UserChanges::default();
        let sid = user.id.as_str();
        if let Some(name) = m.user_name
            && !same_ci(name, &t.user_name)
        {
            c.user_name = Some(name.into());
        }
        if t.external_id.as_deref() != Some(sid) {
            c.external_id = Some(sid.into());
        }
        c.given_name = set_only(m.given_name, t.given_name.as_deref());
        c.family_name = set_only(m.family_name, t.family_name.as_deref());
        c.display_name = set_only(m.display_name, t.display_name.as_deref());
        if let Some(nick) = m.nick_name
            && t.nick_name.as_deref() != Some(nick)
        {
            c.nick_name = Some(nick.into());
        }
        if mapping.title.is_some() {
            c.title = change(m.title, t.title.as_deref());
        }
        if let Some(email) = m.email
            && !t.work_email().is_some_and(|have| same_ci(have, email))
        {
            let pending = link
                .and_then(|l| l.pending_email.as_ref())
                .filter(|p| same_ci(&p.address, email));
            if let Some(p) = pending {
                let name = m.user_name.unwrap_or(&user.username);
                let message = format!(
                    "email change to {:?} was sent at {} ({} days ago) and awaits verification by its owner; not sent again",
                    p.address,
                    p.requested_at,
                    (self.now.millis() - p.requested_at.millis()).max(0) / 86_400_000
                );
                out.note(
                    NoteKind::EmailPendingVerification,
                    ObjectKind::User,
                    sid,
                    name,
                    message,
                );
            } else {
                c.email = Some(email.into());
            }
        }
        if mapping.work_phone.is_some() {
            c.work_phone = change(m.work_phone, t.work_phone());
        }
        c.federation_id = set_only(m.federation_id, t.federation_id.as_deref());
        let e = &t.enterprise;
        let ent = |mapped: bool, want: Option<&str>, have: &Option<CompactString>| {
            if mapped {
                change(want, have.as_deref())
            } else {
                None
            }
        };
        c.enterprise = EnterpriseChanges {
            employee_number: ent(
                mapping.employee_number.is_some(),
                m.employee_number,
                &e.employee_number,
            ),
            department: ent(mapping.department.is_some(), m.department, &e.department),
            division: ent(mapping.division.is_some(), m.division, &e.division),
            organization: ent(
                mapping.organization.is_some(),
                m.organization,
                &e.organization,
            ),
            cost_center: ent(mapping.cost_center.is_some(), m.cost_center, &e.cost_center),
            manager: manager
                .ok()
                .and_then(|want| change(want, e.manager.as_deref())),
        };
        let mut profile = t
            .entitlements
            .iter()
            .find(|e| self.is_profile(e))
            .map(|e| e.value.as_str());
        if let Some(rule) = rule {
            let (change, end_profile) = self.entitlements(user, m, t, link, rule, out);
            c.entitlements = change;
            profile = end_profile;
            if let Some(role) = rule.role.as_deref()
                && !(t.roles.len() == 1 && t.roles[0].value == role)
            {
                c.role = Some(Some(role.into()));
            }
        }
        (c, profile)
    }
}
