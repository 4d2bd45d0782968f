import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';

/** Partitions per topic. */
export type Partitions = Record<string, number[]>;

/** What each member tells the group leader when it joins: what it owns, and which of those hold running tasks. */
export interface MemberClaim {
  owned: Partitions;
  busy: Partitions;
}

/**
 * Shares each topic's partitions out evenly, moving as few as possible: a member keeps the partitions
 * it owns (busy ones first) up to its fair share, and only the rest are dealt out. Kafkajs's round
 * robin reshuffles everything on every join, and a moved partition's running tasks run again on
 * its new owner; this keeps them where they are unless the share must change.
 */
export function assignPartitions(
  members: readonly { id: string; claim: MemberClaim }[],
  topics: Record<string, readonly number[]>,
): Map<string, Partitions> {
  const result = new Map<string, Partitions>(members.map((m) => [m.id, {}]));
  const ids = members.map((m) => m.id).sort();
  for (const [topic, partitions] of Object.entries(topics)) {
    const free = new Set(partitions);
    const take = (id: string, p: number) => {
      free.delete(p);
      const assigned = result.get(id) as Partitions;
      assigned[topic] = [...(assigned[topic] ?? []), p];
    };
    const count = (id: string) => result.get(id)?.[topic]?.length ?? 0;
    // Shares differ by one at most; the larger ones go to the members that own most already.
    const base = Math.floor(partitions.length / Math.max(1, members.length));
    const extra = partitions.length - base * members.length;
    const owns = (m: (typeof members)[number]) => (m.claim.owned[topic] ?? []).filter((p) => free.has(p)).length;
    const share = new Map<string, number>();
    [...members]
      .sort((a, b) => owns(b) - owns(a) || a.id.localeCompare(b.id))
      .forEach((m, i) => {
        share.set(m.id, base + (i < extra ? 1 : 0));
      });
    for (const kind of ['busy', 'owned'] as const) {
      for (const m of members) {
        for (const p of m.claim[kind][topic] ?? []) {
          if (free.has(p) && count(m.id) < (share.get(m.id) ?? 0)) take(m.id, p);
        }
      }
    }
    for (const p of [...free].sort((a, b) => a - b)) {
      const id = ids.filter((i) => count(i) < (share.get(i) ?? 0))[0] ?? ids[0];
      if (id !== undefined) take(id, p);
    }
  }
  return result;
}

/**
 * The kafkajs assigner around assignPartitions; `claim` is read each time this member joins.
 */
export function stickyAssigner(claim: () => MemberClaim): PartitionAssigner {
  return ({ cluster }) => ({
    name: 'TaskfleetSticky',
    version: 1,
    async assign({ members, topics }) {
      const parsed = members.map(({ memberId, memberMetadata }) => {
        let memberClaim: MemberClaim = { owned: {}, busy: {} };
        try {
          const { userData } = AssignerProtocol.MemberMetadata.decode(memberMetadata) ?? {};
          if (userData && userData.length > 0) memberClaim = JSON.parse(userData.toString('utf8')) as MemberClaim;
        } catch {}
        return { id: memberId, claim: memberClaim };
      });
      const partitions = Object.fromEntries(
        topics.map((topic) => [topic, cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId)]),
      );
      const assignment = assignPartitions(parsed, partitions);
      return [...assignment].map(([memberId, assigned]) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 1,
          assignment: assigned,
          userData: Buffer.alloc(0),
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: 'TaskfleetSticky',
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: 1,
          topics,
          userData: Buffer.from(JSON.stringify(claim())),
        }),
      };
    },
  });
}
