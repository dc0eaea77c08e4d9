/** What every view shares: the page's config, the API, the main element, the signed-in customer. */
import type { Api } from "./api.js";
import type { Me, PortalConfig } from "./types.js";

export interface Portal {
  config: PortalConfig;
  api: Api;
  main: HTMLElement;
  me: Me;
  /** Renders the view the location's hash names. */
  route(): void;
}
