import type { Texts } from "../types";
import { register } from "../modules";

const de: Texts = {
  title: "Ihre Datenschutz-Auswahl",
  body: "Wir möchten Cookies und ähnliche Technologien für die unten genannten Zwecke verwenden. Über das für den Betrieb Nötige hinaus wird nichts ohne Ihre Zustimmung genutzt. Sie können Ihre Wahl jederzeit unter „Datenschutz-Einstellungen“ ändern.",
  gpcNote: "Ihr Browser sendet ein Global-Privacy-Control-Signal, daher bleibt Werbung aus.",
  acceptAll: "Alle akzeptieren",
  rejectAll: "Alle ablehnen",
  customize: "Anpassen",
  save: "Auswahl speichern",
  prefsTitle: "Datenschutz-Einstellungen",
  prefsBody: "Wählen Sie Zweck für Zweck. Ihre Wahl gilt nur für diese Website.",
  settings: "Datenschutz-Einstellungen",
  alwaysOn: "Immer aktiv",
  vendors: "Genutzt von",
  tcfNote: "Werbepartner im IAB Transparency & Consent Framework werden über Ihre Wahl informiert.",
  purpose: {
    necessary: {
      name: "Notwendig",
      description: "Hält die Website funktionsfähig und sicher und speichert diese Auswahl. Nicht abschaltbar.",
    },
    analytics: {
      name: "Statistik",
      description: "Zählt Besuche und misst, wie die Website genutzt wird, damit wir sie verbessern können.",
    },
    personalization: {
      name: "Personalisierung",
      description: "Merkt sich Ihre Einstellungen und passt Inhalte und Empfehlungen an Sie an.",
    },
    advertising: {
      name: "Werbung",
      description: "Erlaubt uns und unseren Partnern, Werbung nach Ihren Interessen zu zeigen und zu messen.",
    },
  },
};
register("lang-de", de);
