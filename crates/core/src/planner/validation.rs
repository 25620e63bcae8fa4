//! What the target would refuse: a user is rejected in the plan, with the field and what to do.

use super::*;

impl<'a> Planner<'a> {
    /// The first reason the target would refuse this user, as (field, message).
    pub(super) fn validate_user(
        &self,
        mapped: &MappedUser<'_>,
        creating: bool,
    ) -> Option<(&'static str, String)> {
        let Some(email) = mapped.email else {
            return Some(("email", "the source directory has no email address for this user; the target needs a work email".to_owned()));
        };
        if !is_email(email) {
            return Some(("email", format!("{email:?} is not an email address")));
        }
        let Some(name) = mapped.user_name else {
            return Some((
                "userName",
                format!(
                    "the source attribute mapped to userName ({:?}) is empty for this user",
                    self.policy.mapping.user_name
                ),
            ));
        };
        if !is_email(name) {
            return Some((
                "userName",
                format!(
                    "userName {name:?} is not an email address; map userName to a source attribute that holds one"
                ),
            ));
        }
        if self.salesforce {
            let mapping = &self.policy.mapping;
            if creating && mapped.family_name.is_none() {
                let reason = if mapping.name_split == NameSplit::None {
                    "Salesforce requires a last name and this user has none: Duo's \"lastname\" is empty, \
                     and the connection's mapping sets name_split = \"none\", so none is derived from \"realname\"; \
                     fill \"lastname\" in Duo, or set name_split = \"last_word\" (or \"first_word\") in the mapping"
                } else {
                    "Salesforce requires a last name and none can be derived for this user: Duo's \"lastname\", \
                     \"realname\" and \"username\" are all empty; fill \"lastname\" (or \"realname\") in Duo"
                };
                return Some(("name.familyName", reason.to_owned()));
            }
            let limit = SALESFORCE_NAME_LIMIT;
            if let Some(nick) = mapped.nick_name
                && nick.chars().count() > limit
            {
                return Some((
                    "nickName",
                    format!(
                        "nickName {nick:?} is {} characters; Salesforce allows at most {limit}",
                        nick.chars().count()
                    ),
                ));
            }
            let length = name.chars().count();
            if creating && length > limit {
                match &mapping.nick_name {
                    None => {
                        return Some((
                            "nickName",
                            format!(
                                "userName {name:?} is {length} characters and nickName is not mapped, so Salesforce derives nickName from it \
                                 and refuses it over {limit}; map nickName to a source attribute of at most {limit} characters"
                            ),
                        ));
                    }
                    Some(source) if mapped.nick_name.is_none() => {
                        return Some((
                            "nickName",
                            format!(
                                "nickName is mapped to Duo attribute \"{source}\", which is empty for this user, and userName {name:?} \
                                 is {length} characters: Salesforce would derive nickName from it and refuse it over {limit}; \
                                 fill \"{source}\" in Duo (at most {limit} characters)"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        None
    }
}
