/** Facts about the standard datasets: class names and the usual input normalisations. */
import type { Normalization } from './types.js';

export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export const MNIST_CLASSES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export const CIFAR10_CLASSES: readonly string[] = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];

/**
 * The per-channel mean/std of each standard training set, as commonly published, so that
 * models trained here take inputs normalised the same way as models trained elsewhere.
 */
export const DEFAULT_NORMALIZATION: Readonly<Record<string, Normalization>> = {
  'fashion-mnist': { mean: [0.286], std: [0.353] },
  mnist: { mean: [0.1307], std: [0.3081] },
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
  cifar100: { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] },
};

/**
 * The normalisation to use for a dataset: its standard one when known, otherwise
 * mean 0.5 / std 0.5 per channel (maps [0, 1] to [-1, 1]); compute a dataset's own with
 * computeNormalization when that matters.
 */
export function defaultNormalization(name: string, channels: number): Normalization {
  const known = DEFAULT_NORMALIZATION[name];
  if (known && known.mean.length === channels) return { mean: [...known.mean], std: [...known.std] };
  return { mean: new Array<number>(channels).fill(0.5), std: new Array<number>(channels).fill(0.5) };
}
