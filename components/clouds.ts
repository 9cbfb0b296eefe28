/**
 * The Microsoft clouds a customer tenant can live in, and the hosts Moat talks to in each:
 * the Entra authority (tokens), Microsoft Graph (directory sync) and Exchange Online (the
 * admin REST endpoint for connectors and rules).
 */
export const CLOUDS = {
  global: {
    authorityHost: "https://login.microsoftonline.com",
    graphEndpoint: "https://graph.microsoft.com",
    exchangeEndpoint: "https://outlook.office365.com",
  },
  /** GCC High / DoD. */
  usgovernment: {
    authorityHost: "https://login.microsoftonline.us",
    graphEndpoint: "https://graph.microsoft.us",
    exchangeEndpoint: "https://outlook.office365.us",
  },
  /** Operated by 21Vianet. */
  china: {
    authorityHost: "https://login.chinacloudapi.cn",
    graphEndpoint: "https://microsoftgraph.chinacloudapi.cn",
    exchangeEndpoint: "https://partner.outlook.cn",
  },
} as const;

export type CloudName = keyof typeof CLOUDS;
export const CLOUD_NAMES = Object.keys(CLOUDS) as CloudName[];
