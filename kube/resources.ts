// The resource types the operator reads and writes.
import { GROUP, VERSION } from "../crds/schema/common.ts";

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

const rt = (group: string, version: string, plural: string, kind: string, namespaced = true): ResourceType => ({
  group,
  version,
  plural,
  kind,
  namespaced,
});

export const CRAWLJOBS = rt(GROUP, VERSION, "crawljobs", "CrawlJob");
export const CRAWLFEEDS = rt(GROUP, VERSION, "crawlfeeds", "CrawlFeed");
export const CRAWLSCHEDULES = rt(GROUP, VERSION, "crawlschedules", "CrawlSchedule");
export const JOBS = rt("batch", "v1", "jobs", "Job");
export const CONFIGMAPS = rt("", "v1", "configmaps", "ConfigMap");
export const SECRETS = rt("", "v1", "secrets", "Secret");
export const PODS = rt("", "v1", "pods", "Pod");
export const SERVICEACCOUNTS = rt("", "v1", "serviceaccounts", "ServiceAccount");
export const EVENTS = rt("", "v1", "events", "Event");
export const NAMESPACES = rt("", "v1", "namespaces", "Namespace", false);
export const ROLES = rt("rbac.authorization.k8s.io", "v1", "roles", "Role");
export const ROLEBINDINGS = rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding");
export const LEASES = rt("coordination.k8s.io", "v1", "leases", "Lease");
