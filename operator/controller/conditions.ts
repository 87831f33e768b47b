// Status conditions as Kubernetes API conventions want them: lastTransitionTime moves only
// when the status flips; reason, message and observedGeneration always reflect the latest.

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export function setCondition(existing: readonly Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition[] {
  const list = [...(existing ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const previous = i >= 0 ? list[i] : undefined;
  const condition: Condition = {
    ...next,
    lastTransitionTime: previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString(),
  };
  if (i >= 0) list[i] = condition;
  else list.push(condition);
  return list;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
