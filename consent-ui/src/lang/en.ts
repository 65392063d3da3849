import type { Texts } from "../types";

export const en: Texts = {
  title: "Your privacy choices",
  body: "We would like to use cookies and similar technologies for the purposes below. Nothing beyond what the site needs to work is used unless you agree. You can change your mind at any time under “Privacy settings”.",
  gpcNote: "Your browser sends a Global Privacy Control signal, so advertising stays off.",
  acceptAll: "Accept all",
  rejectAll: "Reject all",
  customize: "Customize",
  save: "Save choices",
  prefsTitle: "Privacy preferences",
  prefsBody: "Choose purpose by purpose. Your choice applies to this site only.",
  settings: "Privacy settings",
  alwaysOn: "Always on",
  vendors: "Used by",
  tcfNote: "Advertising partners in the IAB Transparency & Consent Framework are told your choice.",
  purpose: {
    necessary: {
      name: "Necessary",
      description: "Keeps the site working and secure and remembers this choice. Cannot be turned off.",
    },
    analytics: {
      name: "Analytics",
      description: "Counts visits and measures how the site is used, so we can improve it.",
    },
    personalization: {
      name: "Personalization",
      description: "Remembers your preferences and tailors content and recommendations to you.",
    },
    advertising: {
      name: "Advertising",
      description: "Lets us and our partners show ads based on your interests and measure them.",
    },
  },
};
