//! The rules of making a room and of changing a group's name and topic.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{Role, Room, RoomError, RoomEvent, RoomKind, MAX_MEMBERS};
use crate::domain::{RoomName, Topic};

impl Room {
    /// A direct room starts with both ends as owners; a group with its creator as owner and
    /// the others invited (nobody is put in a group without consent).
    pub(super) fn create(
        &self,
        seq: u64,
        kind: RoomKind,
        name: Option<&RoomName>,
        creator: Uuid,
        members: &[Uuid],
    ) -> Result<Vec<RoomEvent>, RoomError> {
        if self.exists() {
            return Err(RoomError::AlreadyExists);
        }
        let others: BTreeSet<Uuid> = members.iter().copied().filter(|m| *m != creator).collect();
        if others.len() >= MAX_MEMBERS {
            return Err(RoomError::Full);
        }
        let mut roles = BTreeMap::from([(creator, Role::Owner)]);
        let invited = match kind {
            RoomKind::Direct if others.len() != 1 => return Err(RoomError::DirectNeedsOnePeer),
            RoomKind::Direct => {
                roles.extend(others.iter().map(|peer| (*peer, Role::Owner)));
                BTreeSet::new()
            }
            RoomKind::Group => others,
        };
        let mut events = vec![RoomEvent::RoomCreated {
            seq,
            kind,
            name: name.map(|name| name.as_str().to_owned()),
            creator,
            members: roles,
        }];
        events.extend(invited.into_iter().zip(seq + 1..).map(|(user_id, seq)| {
            RoomEvent::MemberInvited {
                seq,
                user_id,
                by: creator,
            }
        }));
        Ok(events)
    }

    /// Admins set a group's name and topic; what is left out stays, and a change to what
    /// already is changes nothing.
    pub(super) fn change_details(
        &self,
        seq: u64,
        by: Uuid,
        name: Option<&RoomName>,
        topic: Option<&Option<Topic>>,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        self.admin_of_group(by)?;
        let name = match name {
            Some(name) => Some(name.as_str().to_owned()),
            None => self.name.clone(),
        };
        let topic = match topic {
            Some(topic) => topic.as_ref().map(|topic| topic.as_str().to_owned()),
            None => self.topic.clone(),
        };
        if self.name == name && self.topic == topic {
            return Ok(vec![]);
        }
        Ok(vec![RoomEvent::DetailsChanged {
            seq,
            name,
            topic,
            by,
        }])
    }
}
