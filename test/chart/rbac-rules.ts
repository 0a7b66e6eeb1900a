// The RBAC rules the chart must grant the operator, written out by hand so a
// change to the chart's rules is a deliberate change to this list too.
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export const OPERATOR_RULES: PolicyRule[] = [
  { apiGroups: ["feedcrawl.io"], resources: ["crawljobs"], verbs: ["get", "list", "watch", "delete"] },
  { apiGroups: ["feedcrawl.io"], resources: ["crawljobs/status"], verbs: ["get", "update", "patch"] },
  { apiGroups: ["feedcrawl.io"], resources: ["crawljobs/finalizers"], verbs: ["update"] },
  { apiGroups: ["feedcrawl.io"], resources: ["crawlschedules"], verbs: ["get", "list", "watch"] },
  { apiGroups: ["feedcrawl.io"], resources: ["crawlschedules/status"], verbs: ["get", "update", "patch"] },
  { apiGroups: ["feedcrawl.io"], resources: ["crawlschedules/finalizers"], verbs: ["update"] },
  { apiGroups: ["feedcrawl.io"], resources: ["crawljobs"], verbs: ["create", "patch"] },
  { apiGroups: ["feedcrawl.io"], resources: ["crawlfeeds"], verbs: ["get", "list", "watch", "create", "patch"] },
  { apiGroups: ["feedcrawl.io"], resources: ["crawlfeeds/status"], verbs: ["get", "update", "patch"] },
  {
    apiGroups: [""],
    resources: ["configmaps"],
    verbs: ["create", "get", "list", "watch", "patch", "update", "delete"],
  },
  { apiGroups: [""], resources: ["serviceaccounts"], verbs: ["create", "get", "list", "watch", "patch", "delete"] },
  {
    apiGroups: ["rbac.authorization.k8s.io"],
    resources: ["roles", "rolebindings"],
    verbs: ["create", "get", "list", "watch", "patch", "delete"],
  },
  { apiGroups: ["batch"], resources: ["jobs"], verbs: ["create", "get", "list", "watch", "patch", "delete"] },
  { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["secrets"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
  { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
];

export function leaderElectionRules(leaseName: string): PolicyRule[] {
  return [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: [leaseName], verbs: ["get", "update"] },
  ];
}

/** What the operator grants each runner (the runner pod contract); it must hold all of it itself. */
export function perJobRunnerRules(job: string): PolicyRule[] {
  return [
    { apiGroups: ["feedcrawl.io"], resources: ["crawljobs"], verbs: ["get"], resourceNames: [job] },
    { apiGroups: ["feedcrawl.io"], resources: ["crawljobs/status"], verbs: ["get", "patch"], resourceNames: [job] },
    { apiGroups: ["feedcrawl.io"], resources: ["crawljobs/finalizers"], verbs: ["update"], resourceNames: [job] },
    { apiGroups: ["feedcrawl.io"], resources: ["crawlfeeds"], verbs: ["create"] },
  ];
}

/** True when `held` allows `verb` on `group/resource` (no wildcards: the chart uses none). */
export function allows(held: PolicyRule[], group: string, resource: string, verb: string): boolean {
  return held.some(
    (rule) =>
      rule.apiGroups.includes(group) &&
      rule.resources.includes(resource) &&
      rule.verbs.includes(verb) &&
      rule.resourceNames === undefined,
  );
}
