import type { Texts } from "../types";
import { register } from "../modules";

const fr: Texts = {
  title: "Vos choix de confidentialité",
  body: "Nous souhaitons utiliser des cookies et technologies similaires pour les finalités ci-dessous. Rien au-delà de ce qui est nécessaire au fonctionnement du site n’est utilisé sans votre accord. Vous pouvez changer d’avis à tout moment via « Paramètres de confidentialité ».",
  gpcNote: "Votre navigateur envoie un signal Global Privacy Control : la publicité reste désactivée.",
  acceptAll: "Tout accepter",
  rejectAll: "Tout refuser",
  customize: "Personnaliser",
  save: "Enregistrer mes choix",
  prefsTitle: "Préférences de confidentialité",
  prefsBody: "Choisissez finalité par finalité. Votre choix ne vaut que pour ce site.",
  settings: "Paramètres de confidentialité",
  alwaysOn: "Toujours actif",
  vendors: "Utilisé par",
  tcfNote: "Les partenaires publicitaires du Transparency & Consent Framework de l’IAB sont informés de votre choix.",
  purpose: {
    necessary: {
      name: "Nécessaires",
      description: "Assurent le fonctionnement et la sécurité du site et mémorisent ce choix. Toujours actifs.",
    },
    analytics: {
      name: "Mesure d’audience",
      description: "Compte les visites et mesure l’utilisation du site pour l’améliorer.",
    },
    personalization: {
      name: "Personnalisation",
      description: "Retient vos préférences et adapte les contenus et recommandations.",
    },
    advertising: {
      name: "Publicité",
      description: "Permet à nous et à nos partenaires d’afficher des publicités selon vos centres d’intérêt et de les mesurer.",
    },
  },
};
register("lang-fr", fr);
