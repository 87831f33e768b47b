// Istio's exportTo: "*" everywhere (the default), "." the object's own namespace, or names.

export function isVisibleTo(exportTo: readonly string[] | undefined, ownNamespace: string, viewerNamespace: string): boolean {
  if (!exportTo || exportTo.length === 0) return true;
  for (const entry of exportTo) {
    if (entry === '*') return true;
    if (entry === '.' && ownNamespace === viewerNamespace) return true;
    if (entry === viewerNamespace) return true;
  }
  return false;
}
