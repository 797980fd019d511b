import { PropError, checkPattern } from './private/validate';

/**
 * Platform user ids allowed to talk to an agent.
 */
export interface AllowedUsers {
  /**
   * Slack member ids, e.g. `U012ABCDEF`.
   * @default - nobody on Slack
   */
  readonly slack?: string[];
  /**
   * Telegram numeric user ids.
   * @default - nobody on Telegram
   */
  readonly telegram?: string[];
  /**
   * Discord user ids (snowflakes).
   * @default - nobody on Discord
   */
  readonly discord?: string[];
}

/**
 * Who may talk to the agent. Hermes denies everyone by default, which looks
 * exactly like a deaf bot, so the construct makes this an explicit choice.
 */
export class AgentAccess {
  /**
   * Everyone who can message the bot in a connected workspace or chat.
   * Only for private workspaces.
   */
  public static allowAll(): AgentAccess {
    return new AgentAccess(true, {});
  }

  /** Only these users; everyone else is ignored. At least one id is required. */
  public static allowUsers(users: AllowedUsers): AgentAccess {
    const all = [...(users.slack ?? []), ...(users.telegram ?? []), ...(users.discord ?? [])];
    if (all.length === 0) {
      throw new PropError('AgentAccess.allowUsers', 'needs at least one user id (use AgentAccess.allowAll() to let everyone in)');
    }
    for (const id of users.slack ?? []) checkPattern('AllowedUsers.slack', id, /^[UW][A-Z0-9]{2,20}$/, 'Slack member ids such as "U012ABCDEF"');
    for (const id of users.telegram ?? []) checkPattern('AllowedUsers.telegram', id, /^[0-9]{1,20}$/, 'numeric Telegram user ids');
    for (const id of users.discord ?? []) checkPattern('AllowedUsers.discord', id, /^[0-9]{15,21}$/, 'Discord user ids (15-21 digits)');
    return new AgentAccess(false, users);
  }

  private constructor(
    /** Whether everyone is allowed. */
    public readonly allowsEveryone: boolean,
    private readonly users: AllowedUsers,
  ) {}

  /**
   * Platforms that have allowed user ids.
   * @internal
   */
  public _platforms(): string[] {
    return (['slack', 'telegram', 'discord'] as const).filter((p) => (this.users[p] ?? []).length > 0);
  }

  /**
   * Allowed ids of one platform (empty when everyone is allowed or none is listed).
   * @internal
   */
  public _users(platform: string): string[] {
    return [...((this.users as { [p: string]: string[] | undefined })[platform] ?? [])];
  }

  /**
   * Hermes environment variables for the given platforms.
   * @internal
   */
  public _environment(platforms: string[]): { [name: string]: string } {
    const env: { [name: string]: string } = {};
    for (const platform of platforms) {
      const key = platform.toUpperCase();
      if (this.allowsEveryone) {
        env[`${key}_ALLOW_ALL_USERS`] = 'true';
      } else {
        const ids = (this.users as { [p: string]: string[] | undefined })[platform] ?? [];
        // An empty list still denies everyone on that platform, as Hermes does.
        env[`${key}_ALLOWED_USERS`] = ids.join(',');
      }
    }
    return env;
  }
}
