import type { MessageStatus } from "../../gen/uims/common/v1/types";
import type { SentMessage } from "../core/types";

export function toMessageStatus(m: SentMessage): MessageStatus {
  return { messageId: m.messageId, state: m.state, medium: m.medium, events: m.events, traceId: m.traceId, segments: m.segments, recipient: m.recipient };
}

type Watcher = (status: MessageStatus) => void;

/** Live WatchStatus streams of the clients connected to this gateway. */
export class StatusWatchers {
  private readonly watchers = new Map<string, Set<Watcher>>();

  publish(message: SentMessage): void {
    const status = toMessageStatus(message);
    for (const w of this.watchers.get(message.sender) ?? []) w(status);
  }

  watch(clientId: string, watcher: Watcher): () => void {
    let set = this.watchers.get(clientId);
    if (!set) this.watchers.set(clientId, (set = new Set()));
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0) this.watchers.delete(clientId);
    };
  }
}
