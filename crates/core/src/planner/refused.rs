//! Writes the target refused before (held until their fingerprint changes) and attributes it does
//! not declare: left out of the plan.

use super::*;

impl<'a> Planner<'a> {
    /// The refusal of this very write (same fingerprint), when the target refused it before.
    pub(super) fn held(
        &self,
        object: ObjectKind,
        source_id: &str,
        attribute: &str,
        fp: &str,
    ) -> Option<&'a HeldRefusal> {
        if self.held.is_empty() {
            return None;
        }
        self.held
            .get(&(object, source_id, attribute))
            .copied()
            .filter(|r| r.fingerprint == fp)
    }

    /// What of a creation was refused before: optional attributes refused before are left
    /// out (each counted as held); `Some` when the creation itself is held (its userName
    /// taken, or the creation refused as it would be sent now).
    pub(super) fn held_creation(
        &self,
        sid: &str,
        attributes: &mut UserAttributes,
        out: &mut Out,
    ) -> Option<&'a HeldRefusal> {
        if self.held.is_empty() {
            return None;
        }
        for (attribute, single) in attributes.optional_writes() {
            let write = split_update(&single, None, &self.catalogue_fp);
            if let Some(r) = write
                .first()
                .and_then(|w| self.held(ObjectKind::User, sid, attribute, &w.fingerprint))
            {
                attributes.remove(attribute);
                let name = attributes.user_name.clone();
                out.hold(ObjectKind::User, sid, &name, r);
            }
        }
        self.held(
            ObjectKind::User,
            sid,
            "userName",
            &user_name_fingerprint(&attributes.user_name),
        )
        .or_else(|| {
            self.held(
                ObjectKind::User,
                sid,
                "create",
                &create_fingerprint(attributes, &self.catalogue_fp),
            )
        })
    }

    /// Takes out of `changes` what the target does not declare and what it refused before.
    pub(super) fn leave_out_held(
        &self,
        sid: &str,
        t: &TargetUser,
        changes: &mut UserChanges,
        out: &mut Out,
    ) {
        for name in &self.undeclared {
            changes.remove(name);
        }
        if self.held.is_empty() || changes.is_empty() {
            return;
        }
        let current = t
            .entitlements
            .iter()
            .find(|e| self.is_profile(e))
            .map(|e| e.value.as_str());
        for write in split_update(changes, current, &self.catalogue_fp) {
            if let Some(r) = self.held(ObjectKind::User, sid, write.attribute, &write.fingerprint) {
                changes.remove(write.attribute);
                out.hold(ObjectKind::User, sid, &t.user_name, r);
            }
        }
    }
}

impl Out {
    /// Leaves a write refused before out of the plan: counted as held, with a note.
    pub(super) fn hold(
        &mut self,
        object: ObjectKind,
        source_id: &str,
        name: &str,
        r: &HeldRefusal,
    ) {
        self.summary.held += 1;
        let message = format!(
            "{} ({}) was refused by the target at {}: {}; not sent again until the value, the rule or the catalogue changes \
             (`scimsync reconcile --retry-refused` sends it again)",
            r.attribute, r.value, r.at, r.reason
        );
        self.note(NoteKind::RefusedEarlier, object, source_id, name, message);
    }
}
