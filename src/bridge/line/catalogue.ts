/**
 * The PSEC catalogue (its "Liste des topics" and "Liste des notifications"; docs/bridges.md): which MVP
 * command name (`TypeCommande.*`, as the MVP library writes it: its value, e.g. `liste_disques`)
 * is which bus action, and which MVP event (`TypeEvenement.*`) is which notification category.
 * Names outside it pass through: an MVP `commande` that is itself a valid action is that action;
 * an event becomes `<categorie>/<evenement>` (docs/bridges.md).
 */
import { checkPath } from '../../protocol/topics.js';

/** MVP command name → bus action. */
export const MVP_COMMANDS: ReadonlyMap<string, string> = new Map([
  ['liste_disques', 'system/disks/list_disks'],
  ['liste_fichiers', 'system/disks/list_files'],
  ['lit_fichier', 'system/disks/read_file'],
  ['copie_fichier', 'system/disks/copy_file'],
  ['supprime_fichier', 'system/disks/remove_file'],
  ['start_benchmark', 'system/misc/benchmark'],
  ['get_file_footprint', 'system/disks/get_file_footprint'],
  ['create_file', 'system/disks/create_file'],
  ['liste_composants', 'system/components/discover'],
]);

/** MVP event name → bus notification category. */
export const MVP_EVENTS: ReadonlyMap<string, string> = new Map([
  ['fichier', 'system/disk/new_file'],
  ['erreur', 'system/events/error'],
]);

const ACTION_TO_COMMAND = new Map([...MVP_COMMANDS].map(([name, action]) => [action, name]));
const CATEGORY_TO_EVENT = new Map([...MVP_EVENTS].map(([name, category]) => [category, name]));

/** `TypeCommande.LISTE_DISQUES`, `LISTE_DISQUES` and `liste_disques` name one command. */
function mvpName(name: string): string {
  return name.replace(/^Type(Commande|Evenement)\./, '').toLowerCase();
}

/** The bus action an MVP `commande` names, or why it names none. */
export function actionOfCommand(name: string): { action: string } | { problem: string } {
  const known = MVP_COMMANDS.get(mvpName(name));
  if (known) return { action: known };
  const problem = checkPath(name, 'action');
  return problem ? { problem: `commande '${name}' is neither an MVP command of the catalogue nor a bus action: ${problem}` } : { action: name };
}

/** The `commande` an MVP peer knows an action by: its catalogue name, else the action itself. */
export function commandOfAction(action: string): string {
  return ACTION_TO_COMMAND.get(action) ?? action;
}

/** The category of an MVP notification (`categorie`, `evenement`), or why it has none. */
export function categoryOfEvent(categorie: string | undefined, evenement: string): { category: string } | { problem: string } {
  const known = MVP_EVENTS.get(mvpName(evenement));
  if (known) return { category: known };
  const category = categorie ? `${categorie}/${evenement}` : evenement;
  const problem = checkPath(category, 'category');
  return problem ? { problem: `notification '${category}' is not a valid bus category: ${problem}` } : { category };
}

/** The MVP (`categorie`, `evenement`) of a bus category: a catalogue event, else the last level is the event. */
export function eventOfCategory(category: string): { categorie?: string; evenement: string } {
  const known = CATEGORY_TO_EVENT.get(category);
  if (known) return { evenement: known };
  const cut = category.lastIndexOf('/');
  return cut < 0 ? { evenement: category } : { categorie: category.slice(0, cut), evenement: category.slice(cut + 1) };
}
