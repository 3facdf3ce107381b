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
 *
 * @example
 *   defaultNormalization('fashion-mnist', 1);   // { mean: [0.286], std: [0.353] }
 */
export function defaultNormalization(name: string, channels: number): Normalization {
  const known = DEFAULT_NORMALIZATION[name.replace(/-sample$/, '')];
  if (known && known.mean.length === channels) return { mean: [...known.mean], std: [...known.std] };
  // a grayscale set seen as RGB (view channels=3) has its one channel in all three
  if (known && known.mean.length === 1) return { mean: new Array<number>(channels).fill(known.mean[0]!), std: new Array<number>(channels).fill(known.std[0]!) };
  // an RGB set seen as grayscale: the luma of the means; the std is approximated the same way
  if (known && channels === 1 && known.mean.length === 3) {
    const luma = (v: readonly number[]): number => 0.2989 * v[0]! + 0.587 * v[1]! + 0.114 * v[2]!;
    return { mean: [luma(known.mean)], std: [luma(known.std)] };
  }
  return { mean: new Array<number>(channels).fill(0.5), std: new Array<number>(channels).fill(0.5) };
}

/** Named normalisations (`--norm`): what pretrained torchvision models expect. */
export const NORMALIZATION_PRESETS: Readonly<Record<string, Normalization>> = {
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
};
