// Group rooms: creating one, its members (invite, leave), and invitations to accept or decline.
//
// Nobody is put in a group without consent: the people named at creation or invited later get
// an invitation (a MemberInvited event on their stream) and join by accepting it. The page keeps
// the invitations it saw (localStorage) and, where the server lists open invitations
// (GET /v1/invites), takes that list as the truth; declining tells the server where it can
// (DELETE /v1/invites/{room}).

import { call } from './api.js';
import { $, el, openDialog } from './dom.js';
import { t } from './i18n.js';

/** A user's id by nickname (404 when nobody has it). */
async function userByNickname(nickname) {
  return call('GET', `/v1/users/by-nickname/${encodeURIComponent(nickname)}`);
}

function nicknames(text) {
  return text
    .split(/[,\n]/)
    .map((n) => n.trim())
    .filter(Boolean);
}

export class Groups {
  /** `ctx`: `me()` (profile), `openRoom(id)`, `inboxSoon()`, `members(roomId)` (reload names). */
  constructor(ctx) {
    this.ctx = ctx;
    this.key = `msa.invites.${ctx.me().id}`;
    try {
      this.invites = JSON.parse(localStorage.getItem(this.key) || '[]');
    } catch {
      this.invites = [];
    }
    this.renderInvites();
  }

  save() {
    try {
      localStorage.setItem(this.key, JSON.stringify(this.invites));
    } catch {
      // In memory only.
    }
  }

  /** The server's list of open invitations, where it has one (else the page's own stays). */
  async load() {
    let page;
    try {
      page = await call('GET', '/v1/invites');
    } catch {
      return;
    }
    const invites = [];
    for (const item of page.items || []) {
      const known = this.invites.find((i) => i.room_id === item.room_id);
      let from = known?.from;
      if (!from) {
        try {
          from = (await call('GET', `/v1/users/${item.invited_by}`)).nickname;
        } catch {
          from = t('unknownUser');
        }
      }
      invites.push({ room_id: item.room_id, by: item.invited_by, from, room: item.room_name || null });
    }
    this.invites = invites;
    this.save();
    this.renderInvites();
  }

  /** A live MemberInvited naming this user. */
  async invited(roomId, by) {
    if (this.invites.some((i) => i.room_id === roomId)) return;
    let from = '';
    try {
      from = (await call('GET', `/v1/users/${by}`)).nickname;
    } catch {
      from = t('unknownUser');
    }
    this.invites.push({ room_id: roomId, by, from });
    this.save();
    this.renderInvites();
  }

  /** This user joined or left the room: any invitation to it is settled. */
  settled(roomId) {
    const before = this.invites.length;
    this.invites = this.invites.filter((i) => i.room_id !== roomId);
    if (this.invites.length !== before) {
      this.save();
      this.renderInvites();
    }
  }

  renderInvites() {
    const list = $('invite-list');
    list.replaceChildren(
      ...this.invites.map((invite) => {
        const accept = el('button', { type: 'button' }, t('accept'));
        const decline = el('button', { type: 'button', className: 'secondary' }, t('decline'));
        const error = el('span', { className: 'error', attrs: { role: 'alert' } });
        accept.addEventListener('click', async () => {
          try {
            await call('POST', `/v1/rooms/${invite.room_id}/members`);
            this.settled(invite.room_id);
            this.ctx.inboxSoon(invite.room_id);
          } catch (failure) {
            error.textContent = failure.message;
          }
        });
        decline.addEventListener('click', async () => {
          // Where the server has declining (else the invitation just leaves this page).
          await call('DELETE', `/v1/invites/${invite.room_id}`).catch(() => {});
          this.settled(invite.room_id);
        });
        return el(
          'li',
          { className: 'invite', dataset: { roomId: invite.room_id } },
          el('span', {}, invite.room ? t('invitedTo', { who: invite.from, room: invite.room }) : t('invitedBy', { who: invite.from })),
          el('span', { className: 'actions' }, accept, decline),
          error,
        );
      }),
    );
    $('invites').hidden = this.invites.length === 0;
  }

  /** The "New group" dialog: a name, and nicknames to invite. */
  newGroup() {
    const dialog = $('group-dialog');
    $('group-name').value = '';
    $('group-invite').value = '';
    $('group-error').textContent = '';
    if (!dialog.dataset.ready) {
      dialog.dataset.ready = '1';
      $('group-form').addEventListener('submit', async (event) => {
        event.preventDefault();
        const name = $('group-name').value.trim();
        const error = $('group-error');
        if (!name) return;
        error.textContent = '';
        try {
          const members = [];
          for (const nickname of nicknames($('group-invite').value)) {
            try {
              members.push((await userByNickname(nickname)).id);
            } catch (failure) {
              if (failure.status === 404) throw new Error(`${t('noSuchNickname')} (${nickname})`);
              throw failure;
            }
          }
          const room = await call('POST', '/v1/rooms', { kind: 'group', name, members });
          dialog.close();
          this.ctx.opened(room, name);
        } catch (failure) {
          error.textContent = failure.message;
        }
      });
    }
    openDialog(dialog, $('group-name'));
  }

  /** The members dialog of a group: who is in it, inviting someone, leaving. */
  async showMembers(roomId) {
    const dialog = $('members-dialog');
    $('invite-nickname').value = '';
    $('members-error').textContent = '';
    dialog.roomId = roomId;
    if (!dialog.dataset.ready) {
      dialog.dataset.ready = '1';
      $('invite-form').addEventListener('submit', async (event) => {
        event.preventDefault();
        const nickname = $('invite-nickname').value.trim();
        const error = $('members-error');
        if (!nickname) return;
        error.textContent = '';
        try {
          const user = await userByNickname(nickname).catch((failure) => {
            throw failure.status === 404 ? new Error(t('noSuchNickname')) : failure;
          });
          await call('POST', `/v1/rooms/${dialog.roomId}/invites`, { user_id: user.id });
          $('invite-nickname').value = '';
          error.textContent = t('invitationSent', { who: user.nickname });
        } catch (failure) {
          error.textContent = failure.message;
        }
      });
      $('leave-room').addEventListener('click', async () => {
        try {
          await call('DELETE', `/v1/rooms/${dialog.roomId}/members/${this.ctx.me().id}`);
          dialog.close();
          this.ctx.left(dialog.roomId);
        } catch (failure) {
          $('members-error').textContent = failure.message;
        }
      });
    }
    openDialog(dialog, $('invite-nickname'));
    await this.listMembers(roomId);
  }

  /** The member list; admins and owners get Remove and Ban beside the others (not owners). */
  async listMembers(roomId) {
    try {
      const page = await call('GET', `/v1/rooms/${roomId}/members`);
      const me = this.ctx.me().id;
      const myRole = page.items.find((m) => m.user_id === me)?.role;
      const moderator = myRole === 'owner' || myRole === 'admin';
      $('member-list').replaceChildren(
        ...page.items.map((m) => {
          const name = m.nickname || t('unknownUser');
          const item = el('li', { dataset: { userId: m.user_id } }, name, el('span', { className: 'role' }, ` · ${t(`role_${m.role}`)}`));
          if (moderator && m.user_id !== me && m.role !== 'owner') {
            const moderate = (label, method, path, body) => {
              const button = el('button', { type: 'button', className: 'quiet' }, label);
              button.setAttribute('aria-label', `${label}: ${name}`);
              button.addEventListener('click', async () => {
                try {
                  await call(method, path, body);
                  await this.listMembers(roomId);
                } catch (failure) {
                  $('members-error').textContent = failure.message;
                }
              });
              return button;
            };
            item.append(
              ' ',
              moderate(t('remove'), 'DELETE', `/v1/rooms/${roomId}/members/${m.user_id}`),
              moderate(t('ban'), 'POST', `/v1/rooms/${roomId}/bans`, { user_id: m.user_id }),
            );
          }
          return item;
        }),
      );
    } catch (failure) {
      $('members-error').textContent = failure.message;
    }
  }
}
