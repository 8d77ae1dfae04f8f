// The client's words, English and Korean: every control's accessible name comes from here.
// The language follows the browser's (navigator.language starting with "ko": Korean).

const en = {
  skip: 'Skip to content',
  loading: 'Loading…',
  signedInAs: 'Signed in as',
  credits: 'Credits',
  freeToday: 'Free today',
  buyCredits: 'Buy credits',
  logOut: 'Log out',
  authIntro: 'Log in, or sign up with an email, a password and a nickname.',
  email: 'Email',
  password: 'Password',
  passwordHint: 'At least 8 characters to sign up.',
  nickname: 'Nickname',
  nicknameHint: 'Only needed to sign up; others find you by it.',
  logIn: 'Log in',
  signUp: 'Sign up',
  rooms: 'Rooms',
  newDirect: 'New direct chat',
  noRooms: 'No conversations yet. Start one with “New direct chat”.',
  back: 'Back to rooms',
  messages: 'Messages',
  message: 'Message',
  send: 'Send',
  pickRoom: 'Pick a conversation.',
  openChat: 'Open chat',
  cancel: 'Cancel',
  chooseProduct: 'Choose a pack',
  pay: 'Pay',
  retry: 'Retry',
  historyStart: 'Beginning of the conversation',
  loadingEarlier: 'Loading earlier messages…',
  pending: 'Sending…',
  failed: 'Not sent',
  you: 'You',
  unknownUser: 'Someone',
  unnamed: 'Conversation',
  unread: '{n} unread',
  noMessagesYet: 'No messages yet',
  deleted: 'Message deleted',
  edited: 'edited',
  newMessageFrom: 'New message from {who}: {text}',
  outOfCredits: 'You are out of messages for today and have no credits. Buy credits to send.',
  product: '{credits} credits — {price}',
  sandboxNote: 'Test payments (sandbox): no money moves.',
  tossUnsupported: 'This server takes payments through Toss, which this page cannot open yet.',
  paid: 'Payment approved: {credits} credits added.',
  paymentFailed: 'The payment was not approved: {reason}',
  paymentPending: 'The payment is being checked; the credits arrive when it is approved.',
  offline: 'Offline: messages are kept and sent when the connection is back.',
  reconnecting: 'Reconnecting…',
  needFields: 'Enter an email and a password.',
  needNickname: 'Enter a nickname to sign up.',
  badLogin: 'Wrong email or password.',
  tryLater: 'The server cannot be reached. Try again in a moment.',
  noSuchNickname: 'Nobody has that nickname.',
  signedOut: 'You are signed out.',
  typing: '{who} is typing…',
  account: 'Account',
  save: 'Save',
  saved: 'Saved.',
  changePassword: 'Change password',
  currentPassword: 'Current password',
  newPassword: 'New password',
  passwordChanged: 'Password changed. Other sessions were signed out.',
  paymentHistory: 'Payment history',
  noPayments: 'No payments yet.',
  refund: 'Refund',
  refunded: '{amount} refunded',
  refundRequested: 'Refund requested.',
  payment_requested: 'requested',
  payment_unknown: 'being checked',
  payment_approved: 'approved',
  payment_failed: 'failed',
  payment_canceled: 'canceled',
  payment_expired: 'expired',
  payment_partially_refunded: 'partly refunded',
  payment_refunded: 'refunded',
  yourData: 'Your data',
  exportData: 'Export my data',
  exported: 'Your data was downloaded.',
  confirmDelete: 'I understand that deleting my account erases my profile for good.',
  deleteAccount: 'Delete account',
  accountDeleted: 'Your account was deleted.',
  newGroup: 'New group',
  invitations: 'Invitations',
  invitedBy: '{who} invited you to a group',
  accept: 'Accept',
  decline: 'Decline',
  members: 'Members',
  groupName: 'Group name',
  inviteNicknames: 'Invite (nicknames, separated by commas)',
  create: 'Create',
  inviteByNickname: 'Invite by nickname',
  invite: 'Invite',
  leave: 'Leave group',
  close: 'Close',
  invitationSent: 'Invitation sent to {who}.',
  role_owner: 'owner',
  role_admin: 'admin',
  role_member: 'member',
  error: 'Something went wrong: {detail}',
};

const ko = {
  skip: '본문으로 건너뛰기',
  loading: '불러오는 중…',
  signedInAs: '로그인한 사용자',
  credits: '크레딧',
  freeToday: '오늘 무료',
  buyCredits: '크레딧 구매',
  logOut: '로그아웃',
  authIntro: '로그인하거나 이메일, 비밀번호, 닉네임으로 가입하세요.',
  email: '이메일',
  password: '비밀번호',
  passwordHint: '가입하려면 8자 이상이어야 합니다.',
  nickname: '닉네임',
  nicknameHint: '가입할 때만 필요합니다. 다른 사람이 이 이름으로 찾습니다.',
  logIn: '로그인',
  signUp: '가입하기',
  rooms: '대화방',
  newDirect: '새 1:1 대화',
  noRooms: '아직 대화가 없습니다. “새 1:1 대화”로 시작하세요.',
  back: '대화방 목록',
  messages: '메시지 목록',
  message: '메시지',
  send: '보내기',
  pickRoom: '대화를 선택하세요.',
  openChat: '대화 열기',
  cancel: '취소',
  chooseProduct: '상품 선택',
  pay: '결제하기',
  retry: '다시 보내기',
  historyStart: '대화의 시작',
  loadingEarlier: '이전 메시지를 불러오는 중…',
  pending: '보내는 중…',
  failed: '보내지 못함',
  you: '나',
  unknownUser: '알 수 없음',
  unnamed: '대화',
  unread: '읽지 않음 {n}',
  noMessagesYet: '아직 메시지가 없습니다',
  deleted: '삭제된 메시지',
  edited: '수정됨',
  newMessageFrom: '{who}님의 새 메시지: {text}',
  outOfCredits: '오늘의 무료 메시지를 다 썼고 크레딧이 없습니다. 크레딧을 구매하면 보낼 수 있습니다.',
  product: '{credits} 크레딧 — {price}',
  sandboxNote: '테스트 결제(샌드박스): 실제로 돈이 나가지 않습니다.',
  tossUnsupported: '이 서버는 토스로 결제하지만, 이 페이지는 아직 토스 결제창을 열 수 없습니다.',
  paid: '결제 완료: {credits} 크레딧이 추가되었습니다.',
  paymentFailed: '결제가 승인되지 않았습니다: {reason}',
  paymentPending: '결제를 확인하는 중입니다. 승인되면 크레딧이 들어옵니다.',
  offline: '오프라인: 메시지는 보관되었다가 연결되면 보내집니다.',
  reconnecting: '다시 연결하는 중…',
  needFields: '이메일과 비밀번호를 입력하세요.',
  needNickname: '가입하려면 닉네임을 입력하세요.',
  badLogin: '이메일 또는 비밀번호가 틀렸습니다.',
  tryLater: '서버에 연결할 수 없습니다. 잠시 후 다시 시도하세요.',
  noSuchNickname: '그 닉네임을 쓰는 사람이 없습니다.',
  signedOut: '로그아웃되었습니다.',
  typing: '{who}님이 입력 중…',
  account: '계정',
  save: '저장',
  saved: '저장했습니다.',
  changePassword: '비밀번호 변경',
  currentPassword: '현재 비밀번호',
  newPassword: '새 비밀번호',
  passwordChanged: '비밀번호를 바꿨습니다. 다른 기기는 로그아웃되었습니다.',
  paymentHistory: '결제 내역',
  noPayments: '결제 내역이 없습니다.',
  refund: '환불',
  refunded: '{amount} 환불됨',
  refundRequested: '환불을 요청했습니다.',
  payment_requested: '요청됨',
  payment_unknown: '확인 중',
  payment_approved: '승인됨',
  payment_failed: '실패',
  payment_canceled: '취소됨',
  payment_expired: '만료됨',
  payment_partially_refunded: '부분 환불됨',
  payment_refunded: '환불됨',
  yourData: '내 데이터',
  exportData: '내 데이터 내보내기',
  exported: '데이터를 내려받았습니다.',
  confirmDelete: '계정을 삭제하면 프로필이 영구히 지워진다는 것을 이해합니다.',
  deleteAccount: '계정 삭제',
  accountDeleted: '계정이 삭제되었습니다.',
  newGroup: '새 그룹',
  invitations: '초대',
  invitedBy: '{who}님이 그룹에 초대했습니다',
  accept: '수락',
  decline: '거절',
  members: '멤버',
  groupName: '그룹 이름',
  inviteNicknames: '초대할 닉네임 (쉼표로 구분)',
  create: '만들기',
  inviteByNickname: '닉네임으로 초대',
  invite: '초대하기',
  leave: '그룹 나가기',
  close: '닫기',
  invitationSent: '{who}님에게 초대를 보냈습니다.',
  role_owner: '소유자',
  role_admin: '관리자',
  role_member: '멤버',
  error: '문제가 생겼습니다: {detail}',
};

export const lang = (navigator.language || 'en').toLowerCase().startsWith('ko') ? 'ko' : 'en';
const words = lang === 'ko' ? ko : en;

/** The text for `key`, `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = words[key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
}

/** Puts the language's words into the static page: text, accessible names. */
export function translate(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll('[data-i18n-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  }
}

const time = new Intl.DateTimeFormat(lang, { hour: 'numeric', minute: '2-digit' });
const day = new Intl.DateTimeFormat(lang, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });

/** A message time: the hour today, the date before. */
export function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const today = new Date();
  return date.toDateString() === today.toDateString() ? time.format(date) : day.format(date);
}

/** An amount of money in minor units as the language writes it. */
export function money(amount, currency) {
  try {
    const format = new Intl.NumberFormat(lang, { style: 'currency', currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(amount / 10 ** digits);
  } catch {
    return `${amount} ${currency}`;
  }
}
