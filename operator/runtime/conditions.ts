// Kubernetes API-convention conditions (a port of apimachinery's
// meta.SetStatusCondition): lastTransitionTime moves only when the status flips;
// reason, message and observedGeneration are updated in place.
import type { Condition } from "../../crds/schema/crawljob.ts";

type ConditionStatus = Condition["status"];

interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
}

/** Returns a new list with the condition set; `now` stamps a transition. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === input.type);
  const existing = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message.slice(0, 32768),
    lastTransitionTime:
      existing && existing.status === input.status
        ? existing.lastTransitionTime
        : now.toISOString().replace(/\.\d+Z$/, "Z"),
  };
  if (input.observedGeneration !== undefined) next.observedGeneration = input.observedGeneration;
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}
